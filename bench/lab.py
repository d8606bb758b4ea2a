"""ganforge lab's targets: states shown per second, and how soon the JSD shown falls below 0.1.

    python bench/lab.py                       # ring8 and toy-1d, 60 s each, one after the other
    python bench/lab.py --data ring8 --seconds 30

For each data set: a lab session (the defaults of `ganforge lab`, one torch thread) is set
playing, as the page's Play button does, and its published state is read every 0.25 s for
``--seconds``. Prints the states published per second (what the page can show; target >= 20
on a 2-D toy at batch 256), the training steps per second, and the time and step at which
the JSD shown first fell below 0.1 (target: within a minute on ring8 and toy-1d), with the
JSD every 5 s. Run it alone: other jobs on the cores slow both figures.
"""

from __future__ import annotations

import argparse
import os
import time

from ganforge.lab.session import Session


def measure(data: str, seconds: float) -> None:
    session = Session(data, threads=1)
    try:
        v0 = session.state()["version"]
        session.play()
        t0 = time.perf_counter()
        hit = None
        trace = []
        while (elapsed := time.perf_counter() - t0) < seconds:
            time.sleep(0.25)
            s = session.state()
            if hit is None and s["jsd"] is not None and s["jsd"] < 0.1:
                hit = (elapsed, s["step"])
            if not trace or elapsed - trace[-1][0] >= 5:
                trace.append((elapsed, s["step"], s["jsd"]))
        session.pause()
        s = session.state()
        elapsed = time.perf_counter() - t0
    finally:
        session.close()
    print(f"{data}: {(s['version'] - v0) / elapsed:.1f} states/s, {s['step'] / elapsed:.1f} "
          f"steps/s over {elapsed:.0f} s; JSD {s['jsd']:.3f} at the end")  # fmt: skip
    if hit is None:
        print("  the JSD shown never fell below 0.1")
    else:
        print(f"  JSD below 0.1 after {hit[0]:.1f} s (step {hit[1]})")
    print("  " + ", ".join(f"{t:.0f} s: step {n} JSD {j:.3f}" for t, n, j in trace))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", action="append", help="data to measure (ring8 and toy-1d)")
    p.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()
    for data in args.data or ["ring8", "toy-1d"]:
        measure(data, args.seconds)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
