"""Feature networks: the MNIST classifier shipped with ganforge, or any network the user has.

A feature network maps images ``[N, C, H, W]`` in data space ([-1, 1], as G produces them) to
either features ``[N, D]``, or a pair ``(features [N, D], logits [N, K])``. Features serve FID,
KID, precision/recall and density/coverage; logits, when there are any, serve the classifier
score and the class histogram. Anything else a network needs (resizing to 299 x 299 for an
Inception-v3, gray to RGB, its own normalisation) belongs inside the network.

The shipped network, ``MnistNet``, is a small CNN trained by ``scripts/train_feature_net.py``
on MNIST (see docs/evaluation.md for its data and held-out accuracy); its weights are
``mnist_net.safetensors`` next to this file. Its features are the 128 activations of the
penultimate layer (after the ReLU), the same role as Inception-v3's pool3 features in FID
(Heusel et al. 2017).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ganforge.errors import GanforgeError

WEIGHTS = "mnist_net.safetensors"
FEATURES = 128  # width of MnistNet's penultimate layer
CLASSES = 10
BATCH = 500  # images per forward when extracting


class MnistNet(nn.Module):
    """Two blocks of two 3x3 convolutions and a 2x2 max-pool, then 128 features and 10 logits.

    [N, 1, 28, 28] -> conv 16, conv 16, pool -> [N, 16, 12, 12] -> conv 32, conv 32, pool
    -> [N, 32, 4, 4] -> linear 128 (features) -> linear 10 (logits); 83k parameters. Input in
    [-1, 1]; a 32 x 32 image (MNIST padded by 2, ``data.image_size=32``) is cropped back to 28 x 28.
    """

    def __init__(self, dropout: float = 0.3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, FEATURES),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(FEATURES, CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] == 32:
            x = x[..., 2:30, 2:30]  # undo the 2-pixel zero padding of MNIST at 32 x 32
        f = self.body(x)  # [N, 128]
        return f, self.head(self.dropout(f))  # features, logits [N, 10]

    @staticmethod
    def check(shape: tuple[int, ...]) -> None:
        """Refuse, in one line, images ``[C, H, W]`` that are not MNIST's."""
        if shape[0] not in (1, 3) or shape[1:] not in ((28, 28), (32, 32)):
            raise GanforgeError(
                f"the MNIST feature network takes 1 x 28 x 28 gray images (3 channels: Stacked "
                f"MNIST), got {' x '.join(map(str, shape))}; pass --features FILE for other data"
            )


def weights_path() -> Path:
    """Where the shipped weights of ``MnistNet`` are installed."""
    return Path(str(resources.files("ganforge.metrics") / WEIGHTS))


def save_mnist_net(net: MnistNet, path: Path, info: dict[str, object]) -> None:
    """Weights as safetensors (float32), with ``info`` (data, accuracy, seed) as JSON metadata."""
    state = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"info": json.dumps(info)})


def mnist_net(path: Path | None = None) -> MnistNet:
    """The shipped MNIST classifier (or the one saved at ``path``), in eval mode."""
    path = path or weights_path()
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise GanforgeError(f"{path}: cannot read the MNIST feature network ({e})") from None
    net = MnistNet()
    net.load_state_dict(state)
    return net.eval()


def load_feature_net(path: str | Path | None = None) -> nn.Module:
    """The feature network: the shipped MNIST classifier (``path`` None), or a network saved
    with ``torch.export.save`` (``.pt2``) or as TorchScript (``torch.jit.save``, other names).

    Both formats run the code stored in the file: load only files you trust.
    """
    if path is None:
        return mnist_net()
    p = Path(path).expanduser()
    if not p.is_file():
        raise GanforgeError(f"{p}: no such feature network file")
    try:
        if p.suffix == ".pt2":
            return torch.export.load(str(p)).module()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load's notice
            return torch.jit.load(str(p), map_location="cpu").eval()
    except Exception as e:  # torch raises RuntimeError, ValueError, zip errors...
        raise GanforgeError(
            f"{p}: not a TorchScript (torch.jit.save) or torch.export (.pt2) network ({e})"
        ) from None


@torch.no_grad()
def extract(
    net: nn.Module, x: torch.Tensor, batch: int = BATCH
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features ``[N, D]`` (float32, on the CPU) and class probabilities ``[N, K]`` (None when
    the network gives no logits) of images ``x`` in chunks of ``batch``: float in [-1, 1], or
    uint8 0..255 as data sets store them (mapped to [-1, 1] first)."""
    # dropout off, BatchNorm on running statistics; a torch.export module refuses eval() and
    # was traced in the mode it was exported in
    with contextlib.suppress(NotImplementedError):
        net.eval()
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    feats: list[torch.Tensor] = []
    probs: list[torch.Tensor] = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch].to(device)
        if chunk.dtype == torch.uint8:
            chunk = chunk.float() / 127.5 - 1.0  # as Dataset.batch: 0..255 -> [-1, 1]
        out = net(chunk.float())
        if isinstance(out, (tuple, list)):
            if len(out) != 2:
                raise GanforgeError(
                    f"the feature network returned {len(out)} outputs; expected features, "
                    "or (features, logits)"
                )
            f, logits = out
            probs.append(F.softmax(logits.float(), dim=1).cpu())
        else:
            f = out
        feats.append(f.reshape(len(f), -1).float().cpu())  # [N, D, 1, 1] -> [N, D]
    features = torch.cat(feats)
    if not bool(torch.isfinite(features).all()):
        raise GanforgeError("the feature network returned NaN or infinite features")
    return features, (torch.cat(probs) if probs else None)
