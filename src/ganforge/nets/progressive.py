"""Progressive growing of GANs (Karras, Aila, Laine & Lehtinen 2018).

G and D start at 4 x 4 and grow by doubling, 4 -> 8 -> 16 -> 32 (-> 64); each new block fades in
with a weight alpha rising from 0 to 1:

    G_s(z) = (1 - alpha) * up(tanh toRGB_{s-1}(h_{s-1})) + alpha * tanh toRGB_s(block_s(h_{s-1}))
    D_s(x) = D_{s-1}-tail((1 - alpha) * fromRGB_{s-1}(down(x)) + alpha * block_s(fromRGB_s(x)))

with ``up`` nearest-neighbour doubling and ``down`` 2 x 2 average pooling. So at alpha = 0 the
new stage's output equals the previous stage's output upsampled, and at alpha = 1 the old
branch is gone. The paper's three other devices are here too:

- equalised learning rate: weights drawn from N(0, 1) and multiplied at run time by He's
  constant c = sqrt(2 / fan_in), so Adam's step is the same size for every layer (section 4.1);
- pixel-wise feature normalisation in G: b = a / sqrt(mean_c(a^2) + 1e-8) (section 4.2);
- minibatch standard deviation in D: the standard deviation of each feature over a group of
  samples, averaged to one number per group and appended as one more feature map (section 3).

Not in the paper: ``batchnorm=True`` (``model.d_batchnorm``) puts BatchNorm after each of D's
3 x 3 convolutions, as in the DCGAN's D (docs/conditional.md measures it).

Both nets always speak full resolution to the rest of ganforge: G's image at the current stage
is upsampled (nearest) to ``size`` x ``size``, and D average-pools its input down to the
current stage, the exact inverse of that upsampling. Training code sets the stage and alpha
with ``set_stage``; both are buffers, so checkpoints keep them.

The real images fade in with G (``fade_reals``, the official code's ``process_reals``): while a
stage fades in, D sees reals x_r average-pooled to the stage's resolution r blended as
(1 - alpha) up(down(x_r)) + alpha x_r, the same blend of the coarse and the fine image that G
makes. G blends its two images after tanh, so both sides are one linear blend in pixel space.
Without it, D's new block sees sharp reals against G's blocky blends while alpha is small, a
difference G can only close by exaggerating the new block's detail by 1 / alpha.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import ConfigError

Tensor = torch.Tensor
START = 4  # the first stage's resolution
SIZES = (8, 16, 32, 64)  # final resolutions (number of stages = log2(size / 4) + 1)


def n_stages(size: int) -> int:
    """Stages to reach ``size``: 4 x 4 is stage 0; 32 x 32 is stage 3 of 4."""
    if size not in SIZES:
        raise ConfigError(f"progressive growing makes square images of size {SIZES}, not {size}")
    return int(math.log2(size // START)) + 1


def channels(resolution: int, width: int) -> int:
    """Feature maps at ``resolution``: 4 * width up to 8 x 8, halving per doubling after it."""
    return max(8, min(4 * width, width * 32 // resolution))


class EqualizedLinear(nn.Module):
    """y = (c W) x + b with W ~ N(0, 1), c = gain / sqrt(fan_in) (Karras et al. 2018, 4.1)."""

    def __init__(self, n_in: int, n_out: int, gain: float = math.sqrt(2)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.scale = gain / math.sqrt(n_in)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """A stride-1 'same' convolution with an equalised learning rate, c = gain / sqrt(C k k)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, gain: float = math.sqrt(2)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in * kernel * kernel)
        self.pad = kernel // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)


class PixelNorm(nn.Module):
    """b_xy = a_xy / sqrt(mean over channels of a_xy^2 + eps) (Karras et al. 2018, 4.2)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


class MinibatchStdDev(nn.Module):
    """Appends one feature map: the standard deviation of every feature and pixel over a group
    of ``group`` samples (biased, over the group), averaged to one number per group
    (Karras et al. 2018, section 3). ``[N, C, H, W]`` -> ``[N, C + 1, H, W]``. A batch whose
    size the group does not divide forms a single group."""

    mixes_batch = True

    def __init__(self, group: int = 4, eps: float = 1e-8) -> None:
        super().__init__()
        self.group = group
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = min(self.group, n)
        if n % g:
            g = n
        y = x.view(g, n // g, c, h, w)  # sample i sits in group i % (n // g)
        std = torch.sqrt(y.var(dim=0, unbiased=False) + self.eps)  # [n // g, C, H, W]
        s = std.mean(dim=(1, 2, 3))  # [n // g]
        feat = s.repeat(g).view(n, 1, 1, 1).expand(n, 1, h, w)
        return torch.cat([x, feat], dim=1)


def _conv_block(
    c_in: int, c_out: int, leak: float, pixelnorm: bool, batchnorm: bool = False
) -> list[nn.Module]:
    layers: list[nn.Module] = [EqualizedConv2d(c_in, c_out, 3)]
    if batchnorm:  # D's option: normalised over the batch before the activation (as DCGAN's D)
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(leak))
    return [*layers, PixelNorm()] if pixelnorm else layers


class _Staged(nn.Module):
    """The current stage and fade weight, as buffers (saved with the weights)."""

    stage: Tensor  # int64 scalar
    alpha: Tensor  # float scalar in [0, 1]

    def set_stage(self, stage: int, alpha: float) -> None:
        self.stage.fill_(stage)
        self.alpha.fill_(alpha)


class ProgressiveGenerator(_Staged):
    """z ``[N, latent]`` -> images ``[N, C, size, size]`` in [-1, 1] at the current stage,
    upsampled to ``size``."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 32) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        c, size, _ = shape
        self.size = size
        self.stages = n_stages(size)
        leak = 0.2
        c0 = channels(START, width)
        self.c0 = c0
        # 4 x 4: PixelNorm(z) -> dense to [c0, 4, 4] -> conv 3 x 3 (the paper's first block)
        self.head = EqualizedLinear(latent_dim, c0 * START * START, gain=math.sqrt(2) / 4)
        self.first = nn.Sequential(
            nn.LeakyReLU(leak), PixelNorm(), *_conv_block(c0, c0, leak, True)
        )
        blocks, to_rgb = [], [EqualizedConv2d(c0, c, 1, gain=1.0)]
        for s in range(1, self.stages):
            r = START * 2**s
            ci, co = channels(r // 2, width), channels(r, width)
            # upsample x2 (in forward), then two 3 x 3 convolutions
            blocks.append(
                nn.Sequential(*_conv_block(ci, co, leak, True), *_conv_block(co, co, leak, True))
            )
            to_rgb.append(EqualizedConv2d(co, c, 1, gain=1.0))
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.ModuleList(to_rgb)
        self.register_buffer("stage", torch.tensor(0))  # set by the schedule
        self.register_buffer("alpha", torch.tensor(1.0))

    def forward_stage(self, z: Tensor, stage: int, alpha: float) -> Tensor:
        """The image at stage ``stage`` (resolution 4 * 2^stage), before the final upsampling."""
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # PixelNorm on z
        h = self.first(self.head(z).view(len(z), self.c0, START, START))
        old: Tensor | None = None
        for s in range(1, stage + 1):
            up = F.interpolate(h, scale_factor=2.0, mode="nearest")
            if s == stage and alpha < 1:
                old = F.interpolate(self.to_rgb[s - 1](h), scale_factor=2.0, mode="nearest")
            h = self.blocks[s - 1](up)
        img = torch.tanh(self.to_rgb[stage](h))  # elementwise: commutes with nearest upsampling
        if old is not None:  # blended as images, as fade_reals blends the reals
            img = torch.lerp(torch.tanh(old), img, alpha)  # (1 - alpha) old + alpha new
        return img

    def forward(self, z: Tensor) -> Tensor:
        stage = int(self.stage)
        img = self.forward_stage(z, stage, float(self.alpha))
        factor = self.size // img.shape[-1]
        return F.interpolate(img, scale_factor=float(factor), mode="nearest") if factor > 1 else img


class ProgressiveDiscriminator(_Staged):
    """images ``[N, C, size, size]`` -> logit ``[N, 1]``, judged at the current stage."""

    mixes_batch = True  # the minibatch-stddev layer: real and fake must be scored apart

    def __init__(
        self,
        shape: tuple[int, int, int],
        width: int = 32,
        group: int = 4,
        leak: float = 0.2,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        c, size, _ = shape
        self.size = size
        self.stages = n_stages(size)
        c0 = channels(START, width)
        from_rgb = [nn.Sequential(EqualizedConv2d(c, c0, 1), nn.LeakyReLU(leak))]
        blocks = []
        for s in range(1, self.stages):
            r = START * 2**s
            ci, co = channels(r, width), channels(r // 2, width)
            from_rgb.append(nn.Sequential(EqualizedConv2d(c, ci, 1), nn.LeakyReLU(leak)))
            # two 3 x 3 convolutions, then 2 x 2 average pooling (in forward)
            blocks.append(
                nn.Sequential(
                    *_conv_block(ci, ci, leak, False, batchnorm),
                    *_conv_block(ci, co, leak, False, batchnorm),
                )
            )
        self.from_rgb = nn.ModuleList(from_rgb)
        self.blocks = nn.ModuleList(blocks)
        # 4 x 4: minibatch stddev -> conv 3 x 3 -> dense 4 x 4 -> dense 1 (the paper's last block)
        self.last = nn.Sequential(
            MinibatchStdDev(group),
            *_conv_block(c0 + 1, c0, leak, False, batchnorm),
            nn.Flatten(),
            EqualizedLinear(c0 * START * START, c0),
            nn.LeakyReLU(leak),
            EqualizedLinear(c0, 1, gain=1.0),
        )
        self.register_buffer("stage", torch.tensor(0))  # set by the schedule
        self.register_buffer("alpha", torch.tensor(1.0))

    def forward_stage(self, x: Tensor, stage: int, alpha: float) -> Tensor:
        """The logit of images ``x`` at stage ``stage``'s resolution."""
        h = self.from_rgb[stage](x)
        if stage > 0:
            h = F.avg_pool2d(self.blocks[stage - 1](h), 2)
            if alpha < 1:
                old = self.from_rgb[stage - 1](F.avg_pool2d(x, 2))
                h = torch.lerp(old, h, alpha)
        for s in range(stage - 1, 0, -1):
            h = F.avg_pool2d(self.blocks[s - 1](h), 2)
        return self.last(h)

    def fade_reals(self, x: Tensor) -> Tensor:
        """Real images ``x`` blended for the current stage and alpha (``fade_reals``)."""
        return fade_reals(x, int(self.stage), float(self.alpha))

    def forward(self, x: Tensor) -> Tensor:
        stage = int(self.stage)
        r = START * 2**stage
        if x.shape[-1] != r:  # average pooling undoes G's nearest upsampling exactly
            x = F.adaptive_avg_pool2d(x, r)
        return self.forward_stage(x, stage, float(self.alpha))


def fade_reals(x: Tensor, stage: int, alpha: float) -> Tensor:
    """Real images ``x`` ``[N, C, size, size]`` as D is to see them at ``stage`` while it fades in
    with weight ``alpha`` (Karras et al. 2018, official code's ``process_reals``): with x_r the
    images average-pooled to the stage's resolution r = 4 * 2^stage,

        (1 - alpha) up(down(x_r)) + alpha x_r     (down: 2 x 2 average pooling, up: nearest x 2)

    returned at ``size`` (nearest upsampling, which D's average pooling undoes). This is the
    blend G makes of its previous stage's image, upsampled, and its new one. At stage 0 or
    alpha = 1, ``x`` itself (D pools it to r)."""
    if stage == 0 or alpha >= 1:
        return x
    size, r = x.shape[-1], START * 2**stage
    if size < r or size % r:
        raise ValueError(f"images of size {size} cannot be pooled to stage {stage}'s {r} x {r}")
    xr = F.avg_pool2d(x, size // r) if size > r else x
    coarse = F.interpolate(F.avg_pool2d(xr, 2), scale_factor=2.0, mode="nearest")
    faded = torch.lerp(coarse, xr, alpha)
    return (
        F.interpolate(faded, scale_factor=float(size // r), mode="nearest") if size > r else faded
    )


def build(
    latent_dim: int, shape: tuple[int, ...], width: int, d_batchnorm: bool = False
) -> tuple[nn.Module, nn.Module]:
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(
            f"progressive growing needs square images [C, H, W]; the data has samples of shape "
            f"{list(shape)} (MNIST: data.image_size=32)"
        )
    c, h, w = shape
    return ProgressiveGenerator(latent_dim, (c, h, w), width), ProgressiveDiscriminator(
        (c, h, w), width, batchnorm=d_batchnorm
    )
