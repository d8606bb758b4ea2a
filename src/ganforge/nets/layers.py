"""Layers and switches that change G or D against mode collapse and for stability.

- ``MinibatchDiscrimination``: Salimans et al. (2016), sec. 3.2.
- ``MinibatchStdDev``: Karras et al. (2018), sec. 3.
- ``VirtualBatchNorm``: Salimans et al. (2016), sec. 3.5.
- spectral normalisation of D's weights: Miyato et al. (2018), W / sigma(W).
- dropout in D: the "use dropouts in D" advice of the GAN tips (Chintala et al. 2016).
- ``PackedD``: packing, D scores m samples at once (PacGAN, Lin et al. 2018).

``apply_switches`` turns a ``ModelConfig``'s switches into these layers on the nets that
``ganforge.nets.build`` made; with every switch off it returns G and D untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError

Tensor = torch.Tensor

VBN_REFERENCE = 64  # size of virtual batch norm's fixed reference batch of z


class Standardise(nn.Module):
    """The data's units in and out of a net that works on standardised points (model.standardize).

    D's first layer maps x to (x - shift) / scale; G's last maps its output u to
    u scale + shift, so that G's samples are in the data's units. ``shift`` ``[width]`` and
    ``scale`` ``[]`` are buffers (saved with the weights), identity until ``set``: the trainer
    sets them from the data once, before the first step. A packing D's input joins m samples,
    so its ``shift`` repeats the data's mean m times.
    """

    shift: Tensor
    scale: Tensor

    def __init__(self, width: int, inverse: bool) -> None:
        super().__init__()
        self.inverse = inverse
        self.register_buffer("shift", torch.zeros(width))
        self.register_buffer("scale", torch.ones(()))

    @torch.no_grad()
    def set(self, mean: Tensor, std: float) -> None:
        """``mean`` ``[dim]`` (tiled to the layer's width) and ``std`` > 0 of the data."""
        width = len(self.shift)
        if width % len(mean) or std <= 0:
            raise ValueError(f"mean of {len(mean)} for width {width}, std {std}")
        self.shift.copy_(mean.to(self.shift).repeat(width // len(mean)))
        self.scale.fill_(std)

    def forward(self, x: Tensor) -> Tensor:
        if self.inverse:
            return x * self.scale + self.shift
        return (x - self.shift) / self.scale


def standardise(modules: Iterable[nn.Module], x: Tensor) -> int:
    """Set every ``Standardise`` layer in ``modules`` from points ``x`` ``[N, dim]``: the mean
    per coordinate and one standard deviation over all coordinates (an isotropic scale keeps
    the data's shape: circles stay circles). Returns how many layers were set."""
    x = x.flatten(1).double()
    mean = x.mean(0)
    std = float((x - mean).square().mean().sqrt()) or 1.0
    layers = [m for net in modules for m in net.modules() if isinstance(m, Standardise)]
    for layer in layers:
        layer.set(mean.float(), std)
    return len(layers)


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. (2016), sec. 3.2. Features f ``[N, A]``, a learnt tensor T ``[A, B, C]``:

        M_i = f_i T                          [N, B, C]
        c_b(x_i, x_j) = exp(-||M_ib - M_jb||_1)
        o(x_i)_b = sum_j c_b(x_i, x_j)       [N, B]  (j over the batch, i included, as in the paper)

    and returns [f, o] ``[N, A + B]``: D sees how close each sample is to the rest of its batch,
    so a collapsed G, whose samples are all alike, is easy to tell apart.
    """

    mixes_batch = True

    def __init__(self, in_features: int, kernels: int = 16, kernel_dim: int = 5) -> None:
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        t = torch.randn(in_features, kernels * kernel_dim) / math.sqrt(in_features)
        self.T = nn.Parameter(t)  # [A, B * C]

    def forward(self, f: Tensor) -> Tensor:
        m = (f @ self.T).view(-1, self.kernels, self.kernel_dim)  # [N, B, C]
        # written out rather than torch.cdist(p=1), whose backward has no derivative of its own:
        # the gradient penalty differentiates through this layer twice
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(3)  # [N, N, B]: ||M_ib - M_jb||_1
        o = torch.exp(-l1).sum(1)  # [N, B]
        return torch.cat([f, o], 1)


class MinibatchStdDev(nn.Module):
    """Karras et al. (2018), sec. 3: the standard deviation of each feature over the batch,
    averaged over the features, appended to every sample as one more feature:
    [N, F] -> [N, F + 1]."""

    mixes_batch = True

    def forward(self, f: Tensor) -> Tensor:
        std = (f.var(0, unbiased=False) + 1e-8).sqrt().mean()  # scalar
        return torch.cat([f, std.expand(len(f), 1)], 1)


class VirtualBatchNorm(nn.Module):
    """Virtual batch normalisation (Salimans et al. 2016, sec. 3.5).

    Each example x is normalised with the statistics of a reference batch R, fixed at the start
    of training, combined with x itself as one more member of that batch:

        mu = (|R| mu_R + mean(x)) / (|R| + 1),   s = (|R| s_R + mean(x^2)) / (|R| + 1),
        y = gamma (x - mu) / sqrt(s - mu^2 + eps) + beta

    (per channel; means over the positions of x for images). An example's output therefore does
    not depend on the other examples of its batch. The reference batch is passed first, in
    ``reference`` mode, where the layer records mu_R and s_R (with their graph) and normalises
    the reference batch by its own statistics; ``VirtualBatchNormG`` arranges this.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.reference = False
        self.ref: tuple[Tensor, Tensor, int] | None = None  # mu_R, s_R, |R|

    def _shape(self, x: Tensor) -> tuple[int, ...]:
        return (1, -1) + (1,) * (x.ndim - 2)  # broadcast per channel: [1, C, 1, ...]

    def forward(self, x: Tensor) -> Tensor:
        shape = self._shape(x)
        if self.reference:
            dims = [0, *range(2, x.ndim)]
            mu, s = x.mean(dims), x.square().mean(dims)  # [C]
            self.ref = (mu, s, len(x))
            mean, var = mu.view(shape), (s - mu.square()).view(shape)
        else:
            if self.ref is None:
                raise RuntimeError("VirtualBatchNorm needs a pass of the reference batch first")
            mu, s, n = self.ref
            dims = list(range(2, x.ndim))
            x_mu = x.mean(dims, keepdim=True) if dims else x  # [N, C, 1, ...]
            x_s = x.square().mean(dims, keepdim=True) if dims else x.square()
            mean = (n * mu.view(shape) + x_mu) / (n + 1)
            var = (n * s.view(shape) + x_s) / (n + 1) - mean.square()
        y = (x - mean) / (var + self.eps).sqrt()
        return y * self.weight.view(shape) + self.bias.view(shape)


class VirtualBatchNormG(nn.Module):
    """G whose BatchNorm layers are replaced by ``VirtualBatchNorm``: each forward first passes
    a fixed reference batch of z (a buffer, so it is checkpointed) to set the statistics, then
    the input. Training and sampling use the same statistics."""

    def __init__(self, g: nn.Module, reference: Tensor) -> None:
        super().__init__()
        self.g = g
        self.latent_dim = int(reference.shape[1])
        self.register_buffer("reference_z", reference)
        self.vbns = [m for m in g.modules() if isinstance(m, VirtualBatchNorm)]

    def forward(self, z: Tensor) -> Tensor:
        for m in self.vbns:
            m.reference = True
        try:
            self.g(self.reference_z)
        finally:
            for m in self.vbns:
                m.reference = False
        return self.g(z)


def _replace(module: nn.Module, old: type[nn.Module], make: Callable[[Any], nn.Module]) -> int:
    """Replace every child of type ``old`` (recursively) by ``make(child)``; returns the count."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, old):
            setattr(module, name, make(child))
            count += 1
        else:
            count += _replace(child, old, make)
    return count


def virtual_batch_norm(g: nn.Module, latent_dim: int) -> VirtualBatchNormG:
    """``g`` with each BatchNorm replaced by ``VirtualBatchNorm`` (same eps), and a reference
    batch of ``VBN_REFERENCE`` z drawn from torch's global generator."""

    def make(bn: nn.Module) -> VirtualBatchNorm:
        assert isinstance(bn, nn.modules.batchnorm._BatchNorm)
        return VirtualBatchNorm(bn.num_features, eps=bn.eps)

    if _replace(g, nn.modules.batchnorm._BatchNorm, make) == 0:
        raise ConfigError(
            "model.virtual_batch_norm replaces G's BatchNorm layers, and this G has none "
            "(set model.g_batchnorm=true)"
        )
    return VirtualBatchNormG(g, torch.randn(VBN_REFERENCE, latent_dim))


def split_d(d: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(trunk, head) of a ganforge D: the trunk gives the last hidden layer's features, the head
    the score. The MLP's head is its last Linear; the DCGAN's its last Conv2d and Flatten."""
    net = getattr(d, "net", None)
    if not isinstance(net, nn.Sequential):
        raise ConfigError(f"{type(d).__name__} has no sequential body to take features from")
    k = 2 if isinstance(net[-1], nn.Flatten) else 1
    return net[:-k], net[-k:]


@torch.no_grad()
def feature_width(trunk: nn.Module, shape: tuple[int, ...]) -> int:
    """F, the number of features the trunk gives per sample (a probe pass in eval mode, so that
    BatchNorm's running statistics are left alone)."""
    was = trunk.training
    trunk.eval()
    try:
        return int(trunk(torch.zeros(2, *shape)).flatten(1).shape[1])
    finally:
        trunk.train(was)


class FeatureD(nn.Module):
    """D as trunk -> [minibatch layers] -> head, for minibatch discrimination and -stddev.

    The trunk's output is flattened to ``[N, F]``; the minibatch layers append features; a new
    linear head scores ``[N, F + extra]``. For the DCGAN's D this head replaces the last
    convolution, whose kernel covers the whole feature map: a linear map of the same features.
    """

    def __init__(self, d: nn.Module, shape: tuple[int, ...], mixers: list[nn.Module]) -> None:
        super().__init__()
        self.trunk, _ = split_d(d)
        width = feature_width(self.trunk, shape)
        self.mixers = nn.Sequential(*mixers)
        with torch.no_grad():
            extra = self.mixers(torch.zeros(2, width)).shape[1]
        self.head = nn.Linear(extra, 1)
        self.mixes_batch = any(getattr(m, "mixes_batch", False) for m in mixers)

    def features_and_scores(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.trunk(x).flatten(1)  # [N, F]
        return f, self.head(self.mixers(f))

    def forward(self, x: Tensor) -> Tensor:
        return self.features_and_scores(x)[1]


def packed_shape(shape: tuple[int, ...], m: int) -> tuple[int, ...]:
    """The shape of one packed input of D: m samples of ``shape`` joined along the first axis
    (features of points, channels of images)."""
    return (m * shape[0], *shape[1:])


class PackedD(nn.Module):
    """Packing (PacGAN, Lin et al. 2018): D judges m samples at once, all real or all fake.

    A batch ``[N, C, ...]`` becomes ``[N / m, m C, ...]`` (samples i m .. i m + m - 1 joined
    along the first axis) and the inner D, built for that shape, gives one score per pack. A G
    that covers few modes makes packs whose members look alike, which real packs rarely do: D
    sees the diversity of a set, not just the quality of one sample. The paper's grid-of-25
    figures (Table 1) are for m = 2, 3 and 4.
    """

    def __init__(self, d: nn.Module, m: int) -> None:
        super().__init__()
        self.d, self.m = d, m
        # A pack's score depends on its own m members only: a batch of reals then one of fakes,
        # each a multiple of m long, can be scored in one pass unless the inner D mixes them.
        self.mixes_batch = bool(getattr(d, "mixes_batch", False))

    def pack(self, x: Tensor) -> Tensor:
        n = len(x)
        if n % self.m:
            raise ValueError(f"packing {self.m} samples per score needs a batch divisible by it")
        return x.reshape(n // self.m, self.m * x.shape[1], *x.shape[2:])

    def forward(self, x: Tensor) -> Tensor:
        return self.d(self.pack(x))  # [N / m, 1]

    def score_each(self, x: Tensor) -> Tensor:
        """A score per sample ``[N, 1]``: each sample judged as a pack of m copies of itself
        (what D thinks of a G that always makes this sample: the heat maps of theory)."""
        return self.d(x.repeat(1, self.m, *[1] * (x.ndim - 2)))

    def features_and_scores(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return features_and_scores(self.d, self.pack(x))


def features_and_scores(d: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """D's last hidden features ``[N, F]`` (flattened) and its scores ``[N, 1]`` in one pass
    (for a ``PackedD``, one row per pack)."""
    if isinstance(d, (FeatureD, PackedD)):
        return d.features_and_scores(x)
    trunk, head = split_d(d)
    h = trunk(x)
    return h.flatten(1), head(h)


def feature_site(d: nn.Module) -> nn.Module:
    """The layer of D whose input is D's last hidden features (``features_and_scores``'s
    first output, before flattening): the head of a plain D, the minibatch layers of a
    ``FeatureD``, and that of the inner D of a ``PackedD``."""
    if isinstance(d, PackedD):
        return feature_site(d.d)
    if isinstance(d, FeatureD):
        return d.mixers
    head = split_d(d)[1]
    assert isinstance(head, nn.Sequential)
    return head[0]


@contextmanager
def capture_features(d: nn.Module) -> Iterator[list[Tensor]]:
    """Within the block, every forward of D (under any wrapper: autocast, compile, DDP)
    appends D's last hidden features ``[N, F]`` to the list it yields, the same tensors
    ``features_and_scores`` returns, from the one pass that also gives the scores."""
    found: list[Tensor] = []
    handle = feature_site(d).register_forward_pre_hook(
        lambda _m, args: found.append(args[0].flatten(1))
    )
    try:
        yield found
    finally:
        handle.remove()


def with_dropout(d: nn.Module, p: float) -> nn.Module:
    """Dropout(p) after each LeakyReLU of D's body (not after the head)."""
    _replace(d, nn.LeakyReLU, lambda act: nn.Sequential(act, nn.Dropout(p)))
    return d


def with_spectral_norm(d: nn.Module) -> nn.Module:
    """Every Linear and Conv of D reparametrised as W / sigma(W), sigma estimated by one power
    iteration per forward (Miyato et al. 2018)."""
    for m in list(d.modules()):
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            spectral_norm(m)
    return d


def apply_switches(
    g: nn.Module, d: nn.Module, cfg: ModelConfig, shape: tuple[int, ...]
) -> tuple[nn.Module, nn.Module]:
    """G and D with the layers that ``cfg``'s switches ask for; untouched when all are off."""
    if cfg.virtual_batch_norm:
        g = virtual_batch_norm(g, cfg.latent_dim)
    if cfg.d_dropout:
        d = with_dropout(d, cfg.d_dropout)
    mixers: list[nn.Module] = []
    if cfg.minibatch_discrimination or cfg.minibatch_stddev:
        width = feature_width(split_d(d)[0], shape)
        if cfg.minibatch_discrimination:
            mixers.append(
                MinibatchDiscrimination(
                    width, cfg.minibatch_discrimination, cfg.minibatch_kernel_dim
                )
            )
            width += cfg.minibatch_discrimination
        if cfg.minibatch_stddev:
            mixers.append(MinibatchStdDev())
        d = FeatureD(d, shape, mixers)
    if cfg.spectral_norm:
        d = with_spectral_norm(d)
    return g, d
