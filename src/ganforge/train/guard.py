"""What should happen when training produces NaN or infinity: stop, or roll back and retry.

A GAN that diverges (a D so confident that its logits overflow, a learning rate too high for
the loss) turns its losses and then every weight into NaN, and each later step only spreads
them. The guard watches each step's scalars without a host sync, reads its flags on the steps
where the loop reads numbers anyway (log lines) and before every checkpoint (so no checkpoint
ever holds a NaN), and then decides by ``train.on_nonfinite``; the loop carries it out:

    stop      raise one line naming the step and the tensors; the last checkpoint is kept
    rollback  load the last good checkpoint, skip the data batches of the steps that failed,
              draw new noise (torch's generator reseeded from (seed, rollback count, step)),
              and go on; after ``train.max_rollbacks`` rollbacks in one run, stop as above

Each event is appended to ``RUN/events.jsonl`` as one JSON object (``{"event": "nonfinite",
"step": 37, "tensors": [...], "action": "rollback", "to_step": 35}``), for reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn

from ganforge.config import NONFINITE_ACTIONS
from ganforge.errors import GanforgeError
from ganforge.train import distributed
from ganforge.train.step import STATS

# train.on_nonfinite: the actions (names and words: config.NONFINITE_ACTIONS)
ACTIONS = NONFINITE_ACTIONS
# The step's scalars that are checked at every step (the gradient norms, measured only on log
# steps, are checked there).
WATCHED = STATS
SHOWN = 3  # tensors named in a message


@dataclass(frozen=True)
class Problem:
    """The first step whose scalars were not finite, which ones, and the weights that are not."""

    step: int
    scalars: tuple[str, ...]
    weights: tuple[str, ...]

    def describe(self) -> str:
        parts = []
        if self.scalars:
            parts.append(f"{', '.join(self.scalars)} not finite")
        if self.weights:
            more = f" and {len(self.weights) - SHOWN} more" if len(self.weights) > SHOWN else ""
            parts.append(f"non-finite weights in {', '.join(self.weights[:SHOWN])}{more}")
        return f"step {self.step}: {'; '.join(parts)}"

    def event(self, action: str, **more: Any) -> dict[str, Any]:
        """The line of ``events.jsonl`` that records this problem and what was done."""
        tensors = [*self.scalars, *self.weights]
        return {
            "event": "nonfinite",
            "step": self.step,
            "tensors": tensors,
            "action": action,
            **more,
        }


def nonfinite_tensors(modules: Mapping[str, nn.Module]) -> list[str]:
    """Names (``G.net.0.weight``) of the parameters and buffers that hold a NaN or infinity."""
    bad = []
    for prefix, m in modules.items():
        for name, t in m.state_dict().items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad.append(f"{prefix}.{name}")
    return bad


def reseed(seed: int, rollbacks: int, step: int) -> int:
    """A fresh torch seed for retry ``rollbacks`` after a failure at ``step`` of run ``seed``."""
    return int(np.random.SeedSequence([seed, rollbacks, step]).generate_state(1)[0])


@dataclass(frozen=True)
class Stop:
    """Stop training: ``message`` is the user's one line."""

    problem: Problem
    message: str


@dataclass(frozen=True)
class Rollback:
    """Reload the checkpoint of ``to_step``, skip the data batches of the steps up to the
    failed one, draw new noise (torch reseeded by ``reseed(seed, count, problem.step)``)."""

    problem: Problem
    to_step: int
    count: int  # this run's rollbacks, this one included

    def warning(self, most: int) -> str:
        p = self.problem
        return (
            f"{p.describe()}; rolled back to step {self.to_step}, skipping the batches of steps "
            f"{self.to_step + 1}-{p.step} and drawing new noise (rollback {self.count} of {most})"
        )


class NonFiniteGuard:
    """Flags the first step with a non-finite scalar; acts on it when the loop asks."""

    def __init__(
        self, action: str, max_rollbacks: int, dist: distributed.Dist | None = None
    ) -> None:
        if action not in ACTIONS:
            raise GanforgeError(f"unknown non-finite action {action!r}")
        self.action = action
        self.max_rollbacks = max_rollbacks
        self.dist = dist or distributed.Dist()
        self.rollbacks = 0  # in this run, resumed runs included (checkpointed)
        self._reset()

    def _reset(self) -> None:
        self._first: torch.Tensor | None = None  # [] int64: first bad step, 0 while none
        self._mask: torch.Tensor | None = None  # [len(WATCHED)] bool: its bad scalars

    def state_dict(self) -> dict[str, Any]:
        return {"rollbacks": self.rollbacks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rollbacks = int(state["rollbacks"])
        self._reset()

    def watch(self, step: int, stats: Mapping[str, torch.Tensor]) -> None:
        """Record whether this step's scalars are finite: a few tiny ops, no host sync."""
        values = torch.stack([stats[k].detach().float().reshape(()) for k in WATCHED])
        bad = ~torch.isfinite(values)  # [len(WATCHED)]
        if self._first is None or self._mask is None:
            self._first = torch.zeros((), dtype=torch.int64, device=values.device)
            self._mask = torch.zeros_like(bad)
        new = bad.any() & (self._first == 0)
        self._first = torch.where(new, torch.full_like(self._first, step), self._first)
        self._mask = torch.where(new, bad, self._mask)

    def problem(
        self, step: int, stats: Mapping[str, torch.Tensor], modules: Mapping[str, nn.Module]
    ) -> Problem | None:
        """The first failure since the last check, or None (reads the flags: one host sync).

        Also checks the scalars this step measured beyond ``WATCHED`` (gradient norms) and,
        when a scalar failed, names the weights that are no longer finite.
        """
        first = 0 if self._first is None else int(self._first)
        scalars: tuple[str, ...] = ()
        if first:
            assert self._mask is not None
            scalars = tuple(k for k, b in zip(WATCHED, self._mask.tolist(), strict=True) if b)
        else:
            extra = [k for k in stats if k not in WATCHED]
            scalars = tuple(k for k in extra if not math.isfinite(float(stats[k])))
            first = step if scalars else 0
        return Problem(first, scalars, tuple(nonfinite_tensors(modules))) if first else None

    def decide(
        self,
        step: int,
        stats: Mapping[str, torch.Tensor],
        modules: Mapping[str, nn.Module],
        weights: bool,
        last_checkpoint: Callable[[], int | None],
    ) -> Stop | Rollback | None:
        """What the loop should do after ``step``: None (go on), ``Rollback`` to the last good
        checkpoint, or ``Stop``. ``weights``: also check every weight (before a checkpoint is
        written). ``last_checkpoint()``: the step of the newest checkpoint, None if none (asked only
        when something failed: it lists the checkpoint folder)."""
        found = self.problem(step, stats, modules)
        if found is None and weights:
            bad = nonfinite_tensors(modules)
            found = Problem(step, (), tuple(bad)) if bad else None
        found = self._agree(found)
        if found is None:
            return None
        last = last_checkpoint()
        if self.action == "rollback" and self.rollbacks < self.max_rollbacks and last is not None:
            return Rollback(found, last, self.rollbacks + 1)
        if last is None:
            advice = "no checkpoint was written before it; lower the learning rates"
        elif self.action == "stop":
            advice = "set train.on_nonfinite=rollback to retry from it, or lower the rates"
        else:
            advice = f"rolled back {self.rollbacks} time(s) already (train.max_rollbacks)"
        kept = "" if last is None else f"; the last good checkpoint is step {last}"
        return Stop(found, f"training diverged at {found.describe()}{kept}; {advice}")

    def _agree(self, found: Problem | None) -> Problem | None:
        """With several processes, all act on the earliest failure of any of them (each
        rolls back the same way, or all stop); one all-reduce."""
        if not self.dist.enabled:
            return found
        none = 2**62
        t = torch.tensor([found.step if found else none], device=self.dist.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MIN)
        step = int(t.item())
        if step == none:
            return None
        if found is not None and found.step == step:
            return found
        return Problem(step, ("values of another process",), found.weights if found else ())
