"""``ganforge translate``: apply a trained image-to-image G to a file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge.apps.translate import (
    check_output,
    load_translator,
    read_input,
    translate,
    write_output,
)

DESCRIPTION = (
    "Apply the generator of an image-to-image run (presets mnist-sr, colorize, mnist-thicken) "
    "to a file: a .npy of images [N, C, H, W] with pixels in [-1, 1] (the layout `ganforge "
    "sample` writes) or a .png/.jpg image of any size (large ones go through G in overlapping "
    "tiles). The output keeps the input's layout: .npy for .npy, an image for an image."
)
TAKES_OVERRIDES = False


def epilog() -> str:
    return (
        "examples:\n"
        "  ganforge translate runs/sr --input small.npy --out big.npy     # 7x7 -> 28x28\n"
        "  ganforge translate runs/color --input grey.jpg --out colour.png\n"
        "  ganforge translate runs/thick --input thick.png --out thin.png --direction BA"
    )


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("run", type=Path, metavar="RUN", help="an image-to-image run folder")
    s.add_argument("--input", type=Path, required=True, metavar="FILE", help=".npy, .png or .jpg")
    s.add_argument("--out", type=Path, required=True, metavar="FILE", help="the result")
    s.add_argument(
        "--direction",
        choices=["AB", "BA"],
        default="AB",
        help="mnist-thicken: AB thin -> thick (default), BA thick -> thin",
    )


def run(args: argparse.Namespace) -> int:
    check_output(args.input, args.out)
    x = read_input(args.input)
    tr = load_translator(args.run)
    y = translate(tr, x, args.direction)
    write_output(y, args.out)
    shape = " x ".join(map(str, y.shape))
    print(f"translated {args.input} ({tr.task}, {args.direction}) -> {args.out} [{shape}]")
    return 0
