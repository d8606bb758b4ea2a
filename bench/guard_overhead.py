"""What the NaN/inf guard and the checkpoint checksum cost: the course's MLP GAN step with and
without ``NonFiniteGuard.watch``, and ``checkpoint.save``/``read`` with their SHA-256.

Run (from the repository root, under the shared CPU lock):

    python bench/guard_overhead.py                  # 400 steps a side, 5 rounds, batch 64
    python bench/guard_overhead.py --steps 100 --rounds 2

The two sides alternate, round after round, in one process, on random data of MNIST's shape
(no data set to load): ``plain`` runs ``GANStep`` alone, ``guarded`` adds the guard's per-step
watch (a stack of the four scalars, ``isfinite`` and two ``where``: no host sync) and its check
every 100 steps (a log step). Printed: the median ms per step of each side and their ratio; then
the median time to save and to read one checkpoint of this model, and the share of each spent
in SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ganforge import checkpoint, config
from ganforge.train.guard import NonFiniteGuard
from ganforge.train.loop import build_step


def run_steps(gan, data: torch.Tensor, steps: int, guard: NonFiniteGuard | None) -> float:
    """Seconds per step over ``steps`` steps."""
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(data), (64,), generator=gen)
        stats = gan([data[idx]], measure=step % 100 == 0)
        if guard is not None:
            guard.watch(step, stats)
            if step % 100 == 0:
                assert guard.problem(step, stats, {}) is None
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = config.build()
    gan = build_step(cfg, (1, 28, 28), torch.device("cpu"))
    data = torch.rand(5000, 1, 28, 28) * 2 - 1
    run_steps(gan, data, 20, None)  # warm up
    times: dict[str, list[float]] = {"plain": [], "guarded": []}
    for _ in range(args.rounds):
        times["plain"].append(run_steps(gan, data, args.steps, None))
        times["guarded"].append(run_steps(gan, data, args.steps, NonFiniteGuard("stop", 0)))
    plain, guarded = (statistics.median(times[k]) for k in ("plain", "guarded"))
    print(f"course MLP GAN, batch 64, {args.threads} thread(s), {args.rounds} rounds")
    print(f"  plain    {plain * 1e3:7.3f} ms/step")
    print(f"  guarded  {guarded * 1e3:7.3f} ms/step   ratio {guarded / plain:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "step-000001.safetensors"
        modules = {"G": gan.G, "D": gan.D}
        optimizers = {"opt_g": gan.opt_g, "opt_d": gan.opt_d}
        saves, reads = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            checkpoint.save(path, step=1, modules=modules, optimizers=optimizers)
            saves.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            checkpoint.read(path)
            reads.append(time.perf_counter() - t0)
        data_bytes = path.read_bytes()
        t0 = time.perf_counter()
        for _ in range(args.rounds):
            hashlib.sha256(data_bytes).hexdigest()
        sha = (time.perf_counter() - t0) / args.rounds
        size = len(data_bytes) / 2**20
    save, read = statistics.median(saves), statistics.median(reads)
    print(f"checkpoint of {size:.1f} MiB: save {save * 1e3:.1f} ms, read {read * 1e3:.1f} ms")
    print(
        f"  SHA-256 of it: {sha * 1e3:.1f} ms ({2 * sha / save:.0%} of a save, which hashes "
        f"twice; {sha / read:.0%} of a read)"
    )


if __name__ == "__main__":
    main()
