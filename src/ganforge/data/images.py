"""Image files: a folder of PNG/JPEG/BMP/GIF/WebP images, and CIFAR-10's binary batches.

CIFAR-10 binary format (Krizhevsky, 2009): each ``data_batch_k.bin`` is a run of 3,073-byte
records, one label byte (0..9) then 3,072 pixel bytes, the 32 x 32 red plane, then green, then
blue (channel-major, rows top to bottom: already the ``[C, H, W]`` order).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.data.base import Dataset
from ganforge.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

# PIL modes that hold one gray value per pixel (with or without alpha).
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

LABELED_SEED = 0  # the seeded subset ``limit`` takes from a class-sorted folder

CIFAR_SIDE = 32
CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE
CIFAR_RECORD = 1 + CIFAR_PIXELS  # label byte + CHW pixels
CIFAR_CLASSES = 10


# ---------------------------------------------------------------- image folders


def find_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, sorted; hidden files and folders skipped."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue  # .ipynb_checkpoints, .DS_Store, ...
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found)


def class_labels(folder: Path, files: list[Path]) -> list[int] | None:
    """Per-file class indices when every image sits in a subfolder of ``folder``, else None.

    The class of ``folder/cat/x.png`` (or ``folder/cat/a/b/x.png``) is the index of ``cat`` among
    the sorted class folders, as in torchvision's ImageFolder.
    """
    tops = [path.relative_to(folder).parts[0] for path in files]
    if any(len(path.relative_to(folder).parts) < 2 for path in files):
        return None
    classes = sorted(set(tops))
    index = {name: i for i, name in enumerate(classes)}
    return [index[top] for top in tops]


def _to_gray(img: Image.Image) -> Image.Image:
    """A gray image as mode "L"; 16/32-bit gray scaled to 0..255 rather than clipped."""
    if img.mode.startswith("I") or img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        # 16-bit modes span 0..65535; 32-bit ones may hold 8-bit values stored wide.
        wide = img.mode.startswith("I;16") or a.max() > 255
        top = 65535.0 if wide else 255.0
        return Image.fromarray(np.rint(np.clip(a, 0, top) * (255.0 / top)).astype(np.uint8))
    return img.convert("L")


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """``img`` center-cropped to a square, then resized to ``size`` x ``size`` (bicubic).

    PIL widens the bicubic kernel by the scale factor when shrinking, so it antialiases.
    """
    w, h = img.size
    s = min(w, h)
    if w != h:
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    if s != size:
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return img


def read_image(path: Path, channels: int | None, image_size: int | None) -> np.ndarray:
    """One image file as uint8 ``[H, W]`` (gray) or ``[H, W, 3]`` (RGB).

    ``channels`` None keeps gray images gray and makes every other mode RGB. The first frame
    of an animated GIF or WebP is used; alpha is dropped.
    """
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated or corrupt file fails here, not later
            gray = img.mode in GRAY_MODES
            base = _to_gray(img) if gray else img
            if channels == 1 or (channels is None and gray):
                out = base.convert("L")  # from colour: BT.601 luma, as transforms.luminance
            else:
                out = base.convert("RGB")  # from gray: the plane repeated
            if image_size is not None:
                out = fit_square(out, image_size)
            return np.asarray(out, dtype=np.uint8)
    except Exception as e:
        # PIL reports bad files as OSError, SyntaxError, ValueError, EOFError, struct.error,
        # DecompressionBombError, ...: all of them mean "this file is not a usable image".
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable image ({reason})") from e


def _same_size(arrays: list[np.ndarray], paths: list[Path]) -> None:
    """Raise DataError naming two files whose images differ in size."""
    first = arrays[0].shape[:2]
    for a, path in zip(arrays, paths, strict=True):
        if a.shape[:2] != first:
            raise DataError(
                f"{paths[0]} is {first[1]}x{first[0]} but {path} is {a.shape[1]}x{a.shape[0]}: "
                "images differ in size; pass an image size to resize them all"
            )


def load_image_folder(
    folder: Path,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    limit: int | None = None,
    skip_bad: bool = True,
    name: str | None = None,
) -> Dataset:
    """The images under ``folder`` as uint8 ``[N, C, H, W]``, with class labels if it has them.

    Files are read in sorted order and ``limit`` keeps the first ``limit`` readable ones, except
    in a folder of class subfolders (sorted by class), where it keeps a seed-0 random subset.
    Unreadable files are skipped with a warning (``skip_bad``) or raise DataError.
    """
    try:
        if not any(folder.iterdir()):
            raise DataError(f"{folder}: the folder is empty")
        files = find_images(folder)
    except OSError as e:
        raise DataError(f"{folder}: cannot list the folder ({e})") from e
    if not files:
        kinds = ", ".join(IMAGE_EXTENSIONS)
        raise DataError(f"{folder}: no images found (looked for {kinds}, in subfolders too)")
    labels = class_labels(folder, files)
    order = list(range(len(files)))
    if limit is not None and labels is not None:
        # Class folders come in class order, so the first ``limit`` would miss later classes.
        g = torch.Generator().manual_seed(LABELED_SEED)
        order = torch.randperm(len(files), generator=g).tolist()

    arrays: list[np.ndarray] = []
    kept: list[int] = []
    bad: list[DataError] = []
    for i in order:
        try:
            arrays.append(read_image(files[i], channels, image_size))
        except DataError as e:
            if not skip_bad:
                raise
            bad.append(e)
            continue
        kept.append(i)
        if limit is not None and len(kept) == limit:
            break
    if not arrays:
        raise DataError(f"{folder}: none of the {len(files)} images could be read; first: {bad[0]}")
    if bad:
        warnings.warn(
            f"{folder}: skipped {len(bad)} unreadable image(s); first: {bad[0]}", stacklevel=3
        )

    if channels is None and any(a.ndim == 3 for a in arrays):
        # Some images are colour: gray ones become RGB by repeating the plane, as PIL does.
        arrays = [a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in arrays]
    if image_size is None:
        _same_size(arrays, [files[i] for i in kept])
    x = np.stack(arrays)  # [N, H, W] or [N, H, W, 3]
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # -> [N, C, H, W]
    y = None if labels is None else torch.tensor([labels[i] for i in kept], dtype=torch.int64)
    return Dataset(x=torch.from_numpy(np.ascontiguousarray(x)), y=y, name=name or str(folder))


# ---------------------------------------------------------------- CIFAR-10 binary


def _batch_number(path: Path) -> tuple[int, str]:
    """Sort key putting data_batch_10 after data_batch_9."""
    m = re.search(r"(\d+)", path.stem)
    return (int(m.group(1)) if m else 0, path.name)


def find_cifar_batches(folder: Path) -> list[Path]:
    """``data_batch_*.bin`` in ``folder`` or its ``cifar-10-batches-bin/``, in number order."""
    for sub in (folder, folder / "cifar-10-batches-bin"):
        files = [p for p in sub.glob("data_batch_*.bin") if p.is_file()]
        if files:
            return sorted(files, key=_batch_number)
    return []


def parse_cifar(data: bytes, where: str = "CIFAR-10 data") -> tuple[np.ndarray, np.ndarray]:
    """Records of CIFAR-10 binary ``data``: images ``[N, 3, 32, 32]`` uint8, labels ``[N]``."""
    if len(data) == 0 or len(data) % CIFAR_RECORD:
        raise DataError(
            f"{where}: {len(data)} bytes is not a whole number of {CIFAR_RECORD}-byte "
            "CIFAR-10 records (truncated or not a CIFAR-10 binary batch?)"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= CIFAR_CLASSES:
        raise DataError(
            f"{where}: label {labels.max()} is out of range 0..9 (not a CIFAR-10 binary batch?)"
        )
    x = records[:, 1:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)  # bytes are already C, H, W
    return x, labels


def load_cifar(files: list[Path], name: str | None = None) -> Dataset:
    """CIFAR-10 binary batches, concatenated in order: x ``[N, 3, 32, 32]`` uint8, y ``[N]``."""
    xs, ys = [], []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise DataError(f"{path}: cannot read the file ({e})") from e
        x, y = parse_cifar(data, str(path))
        xs.append(x)
        ys.append(y)
    return Dataset(
        x=torch.from_numpy(np.concatenate(xs)),
        y=torch.from_numpy(np.concatenate(ys)),
        name=name or str(files[0].parent),
    )
