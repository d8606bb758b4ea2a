"""``ganforge inpaint``: fill the missing pixels of an image with a run's trained G."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.inpaint import inpaint, read_image, read_mask, rect_hole, write_pngs
from ganforge.runs import load_nets

DESCRIPTION = (
    "Fill the hole of an image (given by a mask image, white = missing, or a rectangle) by "
    "searching z so that G(z) matches the known pixels while D(G(z)) stays high (Yeh et al. "
    "2017), then blending G(z) into the hole. Writes the filled image and a before/after PNG "
    "(the image, the context G saw with the hole in grey, G(z), the result)."
)
TAKES_OVERRIDES = False


def epilog() -> str:
    return (
        "examples:\n"
        "  ganforge inpaint runs/mnist --image digit.png --rect 14,0,28,14   # top-right quarter\n"
        "  ganforge inpaint runs/mnist --image digit.png --mask hole.png --out filled.png\n"
        "  ganforge inpaint runs/cgan --image seven.png --rect 0,14,28,28 --label 7"
    )


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("run", type=Path, metavar="RUN", help="a run folder")
    s.add_argument("--image", type=Path, required=True, metavar="FILE", help="a PNG or JPEG")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--mask", type=Path, metavar="FILE", help="an image of the hole: white marks missing pixels"
    )
    where.add_argument(
        "--rect",
        metavar="x0,y0,x1,y1",
        help="the hole as a rectangle in pixels of the image at the run's size (x1, y1 excluded)",
    )
    s.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="the filled image, .png (default: IMAGE-inpainted.png); the before/after "
        "picture goes beside it as FILE-before-after.png",
    )
    s.add_argument("--steps", type=int, default=600, metavar="N", help="Adam steps on z (600)")
    s.add_argument("--restarts", type=int, default=32, metavar="R", help="z searched at once (32)")
    s.add_argument(
        "--lam",
        type=float,
        default=0.01,
        metavar="L",
        help="weight of the prior -log D(G(z)) (0.01)",
    )
    s.add_argument(
        "--blend",
        choices=["poisson", "paste"],
        default="poisson",
        help="poisson: keep G(z)'s gradients, match the border (default); paste: copy G(z)",
    )
    s.add_argument(
        "--label",
        type=int,
        metavar="L",
        help="conditional runs: the class to draw (default: search every class)",
    )
    s.add_argument(
        "--window",
        type=int,
        default=0,
        metavar="W",
        help="context weights: 0 counts every known pixel equally (default; measured better "
        "on MNIST, docs/conditional.md); W > 0 weights known pixels by the share of hole "
        "pixels in the W x W window around them (Yeh et al. 2017 use 7)",
    )
    s.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the starting z (0)")


def run(args: argparse.Namespace) -> int:

    if args.steps < 0 or args.restarts < 1 or args.lam < 0 or args.window < 0:
        raise GanforgeError("--steps, --lam and --window must be >= 0, --restarts >= 1")
    out: Path = args.out or args.image.with_name(f"{args.image.stem}-inpainted.png")
    if out.suffix.lower() != ".png":
        raise GanforgeError(f"--out must end in .png, not '{out.suffix or out.name}'")
    if not out.parent.is_dir():
        raise GanforgeError(f"folder {out.parent} does not exist")
    g, d, shape = load_nets(args.run)
    if len(shape) != 3:
        raise GanforgeError(f"{args.run}: this run makes points, not images: nothing to inpaint")
    image = read_image(args.image, shape)
    size = (shape[1], shape[2])
    hole = read_mask(args.mask, size) if args.mask is not None else rect_hole(args.rect, size)
    result = inpaint(
        g,
        d,
        image,
        hole,
        steps=args.steps,
        restarts=args.restarts,
        lam=args.lam,
        blend=args.blend,
        label=args.label,
        seed=args.seed,
        window=args.window,
    )
    pair = write_pngs(result, out)
    label = "" if result.label is None else f", class {result.label}"
    print(
        f"filled {int(result.hole.sum())} pixels (context loss {result.context_loss:.3f}, "
        f"-log D(G(z)) {result.prior_loss:.3f}{label}); wrote {out} and {pair}"
    )
    return 0
