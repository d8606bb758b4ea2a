"""The networks of the image-to-image tasks (apps/, docs/applications.md).

- ``SRNet``: super-resolution (Ledig et al. 2017, SRGAN; Wang et al. 2018, ESRGAN): residual
  blocks at the low resolution, then x2 pixel-shuffle stages (Shi et al. 2016: a convolution
  to 4C channels, rearranged to C channels at twice the size), tanh out.
- ``UNet``: pix2pix's G (Isola et al. 2017): strided convolutions down, transposed ones up,
  each level's encoder features joined to the decoder's (skips); BatchNorm, in eval mode at
  test time.
- ``ResnetG``: CycleGAN's G (Zhu et al. 2017, after Johnson et al. 2016): 7 x 7 convolution,
  stride-2 downsamplings, residual blocks, as many upsamplings, 7 x 7 convolution, tanh;
  instance norm.
- ``PatchD``: the PatchGAN D (Isola et al. 2017): a grid of logits, each judging one patch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


def _norm(kind: str, channels: int) -> nn.Module:
    """``batch``, ``instance`` (affine, no running statistics, as CycleGAN) or ``none``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class ResBlock(nn.Module):
    """x + conv(act(norm(conv(x)))): two 3 x 3 convolutions, the input added back."""

    def __init__(self, channels: int, norm: str = "none") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            _norm(norm, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            _norm(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def upsample_x2(channels: int) -> nn.Sequential:
    """[N, C, H, W] -> conv -> [N, 4C, H, W] -> pixel shuffle -> [N, C, 2H, 2W] -> PReLU."""
    return nn.Sequential(
        nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(channels)
    )


class SRNet(nn.Module):
    """``[N, C, h, w]`` -> ``[N, C, scale h, scale w]``: bicubic(x) + the learnt residual
    (about [-1, 1]; not clamped, so the L1 loss has a gradient everywhere)."""

    def __init__(self, channels: int = 1, width: int = 32, blocks: int = 4, scale: int = 4):
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.PReLU(width))
        self.body = nn.Sequential(*(ResBlock(width) for _ in range(blocks)))
        self.up = nn.Sequential(*(upsample_x2(width) for _ in range(scale.bit_length() - 1)))
        self.tail = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        h = h + self.body(h)  # a long skip over the residual blocks (SRGAN)
        up = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return up + self.tail(self.up(h))


class UNet(nn.Module):
    """``[N, cin, H, W]`` -> ``[N, cout, H, W]`` in [-1, 1], H and W multiples of 2^depth.

    Encoder level i: conv 4 x 4 stride 2 -> BatchNorm (not the first) -> LeakyReLU 0.2, width
    ``width * 2^i`` (capped at 8x); decoder: transposed conv 4 x 4 stride 2 -> BatchNorm ->
    ReLU, its input the previous decoder output joined to the encoder's at that size.
    """

    def __init__(self, cin: int = 1, cout: int = 2, width: int = 32, depth: int = 3) -> None:
        super().__init__()
        self.depth = depth
        widths = [width * min(2**i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        prev = cin
        for i, w in enumerate(widths):
            self.down.append(
                nn.Sequential(
                    nn.Conv2d(prev, w, 4, 2, 1),
                    nn.BatchNorm2d(w) if i else nn.Identity(),
                    nn.LeakyReLU(0.2),
                )
            )
            prev = w
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            w_in = widths[i] if i == depth - 1 else widths[i] * 2  # joined with the skip
            w_out = widths[i - 1] if i else width
            self.up.append(
                nn.Sequential(
                    nn.ConvTranspose2d(w_in, w_out, 4, 2, 1), nn.BatchNorm2d(w_out), nn.ReLU()
                )
            )
        self.out = nn.Conv2d(width + cin, cout, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        h = x
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        skips.pop()  # the bottom is the decoder's first input, not a skip
        for layer in self.up:
            h = layer(h)
            if skips:
                h = torch.cat((h, skips.pop()), dim=1)
        return torch.tanh(self.out(torch.cat((h, x), dim=1)))


class ResnetG(nn.Module):
    """``[N, C, H, W]`` -> ``[N, C, H, W]`` in [-1, 1] (H, W multiples of 2^downs); instance
    norm. CycleGAN downsamples twice for 256-pixel photographs; a 28-pixel digit's strokes
    are 2-3 pixels wide, so the tasks here downsample once (``downs``), keeping the residual
    blocks at 14 x 14."""

    def __init__(self, channels: int = 1, width: int = 16, blocks: int = 4, downs: int = 1):
        super().__init__()
        self.downs = downs

        def block(cin: int, cout: int, conv: nn.Module) -> list[nn.Module]:
            return [conv, nn.InstanceNorm2d(cout, affine=True), nn.ReLU()]

        w = width
        layers: list[nn.Module] = [
            *block(channels, w, nn.Conv2d(channels, w, 7, padding=3, padding_mode="reflect"))
        ]
        for i in range(downs):  # [N, w 2^i, H, W] -> [N, w 2^(i+1), H / 2, W / 2]
            layers += block(
                w * 2**i, w * 2 ** (i + 1), nn.Conv2d(w * 2**i, w * 2 ** (i + 1), 3, 2, 1)
            )
        top = w * 2**downs
        layers += [ResBlock(top, "instance") for _ in range(blocks)]
        for i in reversed(range(downs)):
            c_in, c_out = w * 2 ** (i + 1), w * 2**i
            layers += block(c_in, c_out, nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1))
        layers += [nn.Conv2d(w, channels, 7, padding=3, padding_mode="reflect"), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PatchD(nn.Module):
    """``[N, C, H, W]`` -> logits ``[N, 1, H / 4, W / 4]``, each judging a 22 x 22 patch.

    conv 4x4 s2 (w) -> LeakyReLU -> conv 4x4 s2 (2w) -> norm -> LeakyReLU -> conv 3x3 (4w) ->
    norm -> LeakyReLU -> conv 3x3 (1).
    """

    def __init__(self, channels: int, width: int = 32, norm: str = "batch") -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            _norm(norm, 2 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 3, 1, 1),
            _norm(norm, 4 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 1, 3, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
