"""The image-to-image tasks: for each, its nets, its training data and its step.

``TASKS`` is the table ``app.task`` names (``config.APP_TASKS``): super-resolution of digits
(``sr``), colourisation of photographs (``colorize``) and thin <-> thick digits, unpaired
(``thicken``). A task's data hands out batches and carries its own seeded state, saved in the
checkpoints, so a resumed run draws the batches the uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ganforge.config import APP_TASKS, Config
from ganforge.data import load_mnist5k
from ganforge.data.base import BatchSampler
from ganforge.data.lab import join_lab, split_lab
from ganforge.data.pairs import (
    average_pool,
    holdout_split,
    random_patches,
    thicken,
    thin_thick,
    training_photos,
)
from ganforge.errors import ConfigError
from ganforge.losses import LOSSES
from ganforge.metrics.features import mnist_net
from ganforge.nets.translate import PatchD, ResnetG, SRNet, UNet
from ganforge.stabilizers import check_ema

from .step import CycleStep, ImagePool, PairedStep

Tensor = torch.Tensor


class TaskData(Protocol):
    """A task's training batches and their state."""

    def next(self, device: torch.device) -> tuple[Tensor, Tensor]: ...

    def fixed(self, n: int) -> tuple[Tensor, Tensor]: ...

    def states(self) -> dict[str, Any]: ...


class DigitsSR:
    """sr: (the scale x scale average pool of a digit, the digit), digits of the bundled 5k
    minus ``app.holdout`` held out (``data.pairs.holdout_split``, seed 0)."""

    def __init__(self, cfg: Config) -> None:
        data = load_mnist5k()
        train_idx, self.holdout_idx = holdout_split(len(data), cfg.app.holdout)
        self.hr = data.batch(train_idx)  # [N, 1, 28, 28] in [-1, 1]
        self.lr = average_pool(self.hr, cfg.app.scale)
        self.sampler = BatchSampler(len(self.hr), cfg.train.batch_size, cfg.train.seed)

    def next(self, device: torch.device) -> tuple[Tensor, Tensor]:
        i = self.sampler.next()
        return self.lr[i].to(device), self.hr[i].to(device)

    def fixed(self, n: int) -> tuple[Tensor, Tensor]:
        return self.lr[:n], self.hr[:n]

    def states(self) -> dict[str, Any]:
        return {"sampler": self.sampler}


def is_photo_sr(cfg: Config) -> bool:
    """sr on colour photographs (``data.source`` photos or a folder) rather than digits."""
    return cfg.app.task == "sr" and cfg.data.source != "mnist5k"


class _Generator:
    """A torch.Generator as a named state of the checkpoints."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["state"])


class PhotoPatches:
    """colorize: (L, ab) of random ``app.patch``-pixel crops of the training photographs, L
    scaled to [-1, 1], ab / 110 (``data.lab``)."""

    def __init__(self, cfg: Config) -> None:
        self.photos = list(training_photos(cfg.data.source).values())
        self.size, self.batch = cfg.app.patch, cfg.train.batch_size
        self.rng = _Generator(cfg.train.seed)

    def next(self, device: torch.device) -> tuple[Tensor, Tensor]:
        rgb = random_patches(self.photos, self.batch, self.size, self.rng.generator)
        light, ab = split_lab(rgb)
        return light.to(device), ab.to(device)

    def fixed(self, n: int) -> tuple[Tensor, Tensor]:
        rgb = random_patches(self.photos, n, self.size * 2, torch.Generator().manual_seed(1))
        return split_lab(rgb)

    def states(self) -> dict[str, Any]:
        return {"patches": self.rng}


class PhotoSR(PhotoPatches):
    """sr on photographs: (the scale x scale average pool of a random ``app.patch``-pixel RGB
    crop, the crop), pixels in [-1, 1]; the crops as for colorize."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.scale = cfg.app.scale

    def next(self, device: torch.device) -> tuple[Tensor, Tensor]:
        hr = random_patches(self.photos, self.batch, self.size, self.rng.generator) * 2 - 1
        return average_pool(hr, self.scale).to(device), hr.to(device)

    def fixed(self, n: int) -> tuple[Tensor, Tensor]:
        gen = torch.Generator().manual_seed(1)
        hr = random_patches(self.photos, n, self.size * 2, gen) * 2 - 1
        return average_pool(hr, self.scale), hr


class ThinThick:
    """thicken: unpaired batches (a from domain A, b from domain B), each with its own seeded
    order; for the plain L1 model (``app.adv`` 0), pairs (a, thicken(a)) instead."""

    def __init__(self, cfg: Config) -> None:
        self.a, self.b, _, _ = thin_thick(load_mnist5k())
        self.paired = cfg.app.adv == 0
        if self.paired:
            self.b = thicken(self.a)
        bs, seed = cfg.train.batch_size, cfg.train.seed
        self.sampler_a = BatchSampler(len(self.a), bs, seed)
        self.sampler_b = BatchSampler(len(self.b), bs, seed + 1)

    def next(self, device: torch.device) -> tuple[Tensor, Tensor]:
        i = self.sampler_a.next()
        j = i if self.paired else self.sampler_b.next()
        return self.a[i].to(device), self.b[j].to(device)

    def fixed(self, n: int) -> tuple[Tensor, Tensor]:
        return self.a[:n], self.b[:n]

    def states(self) -> dict[str, Any]:
        return {"sampler_a": self.sampler_a, "sampler_b": self.sampler_b}


@dataclass(frozen=True)
class Task:
    about: str
    generators: tuple[str, ...]  # the names of its generators, as the checkpoints hold them
    directions: tuple[str, ...]  # what `ganforge translate --direction` accepts


TASKS: dict[str, Task] = {
    "sr": Task("super-resolution of digits, x2 or x4 (SRGAN-style)", ("G",), ("AB",)),
    "colorize": Task("colourisation of photographs, L -> ab (pix2pix)", ("G",), ("AB",)),
    "thicken": Task("thin <-> thick digits, unpaired (CycleGAN)", ("G_AB", "G_BA"), ("AB", "BA")),
}
assert tuple(TASKS) == APP_TASKS


def check(cfg: Config) -> None:
    """Refuse in one line what the image-to-image trainer cannot do."""
    if cfg.app.task not in TASKS:
        raise ConfigError(f"app.task={cfg.app.task!r} is not an image-to-image task")
    if cfg.app.task == "thicken" and cfg.data.source != "mnist5k":
        raise ConfigError("app.task=thicken trains on the bundled digits (mnist5k) only")
    if is_photo_sr(cfg) and cfg.app.feature > 0:
        raise ConfigError(
            "app.feature: the feature loss uses the MNIST network, for digits only; "
            "pass app.feature=0 (or --preset photo-sr) for photographs"
        )
    if cfg.train.batch_size < 2:
        raise ConfigError("the image-to-image tasks need train.batch_size >= 2 (BatchNorm)")
    check_ema(cfg.stab.ema, cfg.stab.ema_rampup)
    if cfg.stab.ema > 0 and cfg.app.task == "colorize":  # its U-Net's BatchNorm statistics
        raise ConfigError(  # belong to the trained weights, not to their average
            "stab.ema: not for app.task=colorize (its U-Net has BatchNorm); sr and thicken take it"
        )


def ema_name(generator: str) -> str:
    """The checkpoint's name of a generator's moving average (``stab.ema``)."""
    return f"{generator}_ema"


def build_nets(cfg: Config) -> dict[str, nn.Module]:
    """The task's generators and, unless ``app.adv`` is 0, its discriminators (random
    weights from torch's RNG)."""
    a, w = cfg.app, cfg.model.width
    adv = a.adv > 0
    if a.task == "sr":
        c = 3 if is_photo_sr(cfg) else 1
        return {"G": SRNet(c, w, a.blocks, a.scale), **({"D": PatchD(2 * c, w)} if adv else {})}
    if a.task == "colorize":
        return {"G": UNet(1, 2, w), **({"D": PatchD(3, w)} if adv else {})}
    nets: dict[str, nn.Module] = {"G_AB": ResnetG(1, w, a.blocks), "G_BA": ResnetG(1, w, a.blocks)}
    if adv:
        nets |= {"D_A": PatchD(1, 2 * w, "instance"), "D_B": PatchD(1, 2 * w, "instance")}
    return nets


def build_data(cfg: Config) -> TaskData:
    if cfg.app.task == "sr":
        return PhotoSR(cfg) if is_photo_sr(cfg) else DigitsSR(cfg)
    if cfg.app.task == "colorize":
        return PhotoPatches(cfg)
    return ThinThick(cfg)


def _params(nets: dict[str, nn.Module], prefix: str) -> list[nn.Parameter]:
    return [p for k, m in nets.items() if k.startswith(prefix) for p in m.parameters()]


def optimizers(cfg: Config, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
    """Adam for the generators together, another for the discriminators together."""
    o = cfg.optim
    out: dict[str, torch.optim.Optimizer] = {
        "opt_g": torch.optim.Adam(_params(nets, "G"), lr=o.lr_g, betas=o.betas_g)
    }
    if d_params := _params(nets, "D"):
        out["opt_d"] = torch.optim.Adam(d_params, lr=o.lr_d, betas=o.betas_d)
    return out


def _features(net: nn.Module) -> Any:
    return lambda x: net(x)[0]


def build_step(
    cfg: Config,
    nets: dict[str, nn.Module],
    opts: dict[str, torch.optim.Optimizer],
    pools: tuple[ImagePool, ImagePool],
    device: torch.device,
) -> PairedStep | CycleStep:
    a, loss = cfg.app, LOSSES[cfg.train.loss]
    if a.task == "thicken":
        return CycleStep(
            nets, opts["opt_g"], opts.get("opt_d"), loss, cfg.train.loss,
            a.cycle, a.identity, a.adv, pools,
        )  # fmt: skip
    feature_net = None
    if a.task == "sr" and a.feature > 0:
        net = mnist_net().to(device).requires_grad_(False)
        feature_net = _features(net)
    return PairedStep(
        nets["G"], nets.get("D"), opts["opt_g"], opts.get("opt_d"), loss, cfg.train.loss,
        a.content, a.adv, a.feature, feature_net,
    )  # fmt: skip


@torch.no_grad()
def show(cfg: Config, nets: dict[str, nn.Module], x: Tensor, y: Tensor) -> Tensor:
    """Cells ``[3n, C, H, W]`` in [-1, 1] of a before/after grid, three per row: the input
    (resized to the output's size), the output, the truth (thicken: a, G_AB(a),
    G_BA(G_AB(a)) for the first half of the rows, b, G_BA(b), G_AB(G_BA(b)) for the rest)."""
    task = cfg.app.task
    if task == "sr":
        out = nets["G"](x)
        up = torch.nn.functional.interpolate(x, size=out.shape[-2:], mode="nearest")
        cells = [up, out, y]
    elif task == "colorize":
        grey = torch.zeros_like(y)
        cells = [join_lab(x, grey) * 2 - 1, join_lab(x, nets["G"](x)) * 2 - 1]
        cells.append(join_lab(x, y) * 2 - 1)
    else:
        half = len(x) // 2
        a, b = x[:half], y[: len(x) - half]
        fb, fa = nets["G_AB"](a), nets["G_BA"](b)
        rows_a = [a, fb, nets["G_BA"](fb)]
        rows_b = [b, fa, nets["G_AB"](fa)]
        cells = [torch.cat(p) for p in zip(rows_a, rows_b, strict=True)]
    return torch.stack(cells, dim=1).flatten(0, 1)
