"""NumPy array files: ``.npy`` (one array) and ``.npz`` (key ``x``, labels in ``y``).

Accepted layouts: images ``[N, H, W]`` (one channel), ``[N, C, H, W]`` or ``[N, H, W, C]`` with
C in (1, 3); points ``[N, D]``. Image values are read by their range:

    uint8          -> 0..255
    [0, 1]         -> x * 255
    [-1, 1]        -> data space, used as it is (float32)
    [0, 255]       -> 0..255

Images whose 0..255 values are whole numbers are stored as uint8; the rest as float32 in
[-1, 1] (x / 127.5 - 1). Points are float32, used as they are. Pickled (object) arrays are
never loaded: unpickling runs code from the file.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ganforge.data.base import Dataset
from ganforge.errors import DataError

NPY_MAGIC = b"\x93NUMPY"  # what a .npy file starts with
ZIP_MAGIC = b"PK"  # what a .npz (a zip archive, empty ones included) starts with
NUMERIC_KINDS = "buif"  # bool, signed and unsigned integers, floats
ROUND_TOL = 1e-3  # 0..255 values this close to whole numbers are whole (float32 k/255 * 255)


def _unreadable(path: Path, e: Exception) -> DataError:
    """The one-line error for a file np.load refuses or cannot parse."""
    if "allow_pickle" in str(e):
        return DataError(
            f"{path}: holds pickled Python objects, which are not loaded (unpickling can run "
            "code); save a numeric array instead"
        )
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    return DataError(f"{path}: not a readable NumPy file ({reason})")


# The ways np.load reports a bad file: a bad header or pickle refusal (ValueError), a short
# read (EOFError, OSError), a corrupt .npz member (BadZipFile, zlib.error, KeyError).
_LOAD_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError)


def _pick(path: Path, keys: list[str]) -> str:
    """The key of the data array in a .npz: ``x``, else the only one."""
    if "x" in keys:
        return "x"
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise DataError(f"{path}: the archive holds no arrays")
    raise DataError(f"{path}: holds arrays {keys}; store the data under 'x' (labels under 'y')")


def read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The data array and the labels array (or None) stored in a .npy or .npz file."""
    try:
        # Our own handle: np.load(path) leaks its file when a .npz turns out corrupt.
        with path.open("rb") as f:
            # np.load takes anything else for a pickle: say what the file is not.
            if not f.read(len(NPY_MAGIC)).startswith((NPY_MAGIC, ZIP_MAGIC)):
                raise DataError(f"{path}: not a readable NumPy file (no .npy or .npz header)")
            f.seek(0)
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                return loaded, None
            with loaded as archive:
                key = _pick(path, list(archive.files))
                y = archive["y"] if key == "x" and "y" in archive.files else None
                return archive[key], y
    except _LOAD_ERRORS as e:
        raise _unreadable(path, e) from e


def to_nchw(x: np.ndarray, name: str) -> np.ndarray:
    """Images ``[N, H, W]``, ``[N, C, H, W]`` or ``[N, H, W, C]`` (C in 1, 3) as ``[N, C, H, W]``.

    Channels-first wins when dim 1 is 1 or 3; otherwise dim 3 must be (channels-last).
    """
    if x.ndim == 3:
        return x[:, None]
    if x.shape[1] in (1, 3):
        return x
    if x.shape[3] in (1, 3):
        return x.transpose(0, 3, 1, 2)
    raise DataError(
        f"{name}: 4-D images need 1 or 3 channels in dim 1 ([N, C, H, W]) or dim 3 "
        f"([N, H, W, C]); got shape {list(x.shape)}"
    )


def scale_images(x: np.ndarray, name: str) -> torch.Tensor:
    """Image values as uint8 0..255 where they are whole, else float32 in [-1, 1].

    The value range decides the scale (see the module docstring); any other range is an error.
    """
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x))
    work = np.result_type(x.dtype, np.float32)  # float32, or float64 for wide ints and floats
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0 and hi <= 1:
        pixels = x.astype(work) * 255  # [0, 1] -> 0..255
    elif lo >= -1 and hi <= 1:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    elif lo >= 0 and hi <= 255:
        pixels = x.astype(work)
    else:
        raise DataError(
            f"{name}: image values span [{lo:g}, {hi:g}]; expected 0..255, [0, 1] or [-1, 1]"
        )
    whole = np.rint(pixels)
    if float(np.abs(pixels - whole).max()) <= ROUND_TOL:
        return torch.from_numpy(np.ascontiguousarray(whole, dtype=np.uint8))
    return torch.from_numpy((pixels / 127.5 - 1).astype(np.float32))  # 0..255 -> [-1, 1]


def check_labels(y: np.ndarray, n: int, name: str) -> torch.Tensor:
    """Labels ``[n]`` of an integer dtype, as int64."""
    if y.dtype.kind not in "iu":
        raise DataError(f"{name}: labels 'y' must be integers, got dtype {y.dtype}")
    if y.shape != (n,):
        raise DataError(f"{name}: labels 'y' have shape {list(y.shape)}, expected [{n}]")
    return torch.from_numpy(y.astype(np.int64))


def from_arrays(x: np.ndarray, y: np.ndarray | None, name: str) -> Dataset:
    """A Dataset from a data array (images or points) and optional labels, checked."""
    if x.dtype.kind not in NUMERIC_KINDS:
        raise DataError(f"{name}: non-numeric dtype {x.dtype}; expected integers or floats")
    if x.ndim not in (2, 3, 4):
        raise DataError(
            f"{name}: expected images [N, H, W], [N, C, H, W], [N, H, W, C] or points [N, D], "
            f"got shape {list(x.shape)}"
        )
    if 0 in x.shape:
        raise DataError(f"{name}: the array is empty (shape {list(x.shape)})")
    if x.dtype.kind == "b":
        x = x.astype(np.float32)  # False/True -> 0/1
    if x.dtype.kind == "f" and not bool(np.isfinite(x).all()):
        raise DataError(f"{name}: the data contains NaN or infinite values")
    if x.ndim == 2:
        top = float(np.abs(x).max())
        if top > float(np.finfo(np.float32).max):
            raise DataError(f"{name}: values reach {top:g}, beyond float32's range")
        data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # points, as they are
    else:
        data = scale_images(to_nchw(x, name), name)
    labels = None if y is None else check_labels(y, len(x), name)
    return Dataset(x=data, y=labels, name=name)


def load_array_file(path: Path, name: str | None = None) -> Dataset:
    """The Dataset stored in a .npy or .npz file (see the module docstring)."""
    x, y = read_arrays(path)
    return from_arrays(x, y, name or str(path))
