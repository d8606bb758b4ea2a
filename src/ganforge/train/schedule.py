"""Schedules: pure functions of the step, and the horizon they are drawn over.

Learning-rate decay (``optim.decay_from``) and the instance noise (``stab.instance_noise``) run
over a horizon of steps: ``train.steps`` when the run started. The horizon is saved with every
checkpoint (the named state ``schedule``), so a run resumed with a larger ``--steps`` keeps its
schedules where they were: past the horizon the rates stay at their last value and the noise
at 0 (``resume_note`` says so, in one line). On the clock (``train.seconds``) the learning-rate
decay runs over the budget of seconds instead (``lr_factor_on_clock``): the training seconds so
far, a resumed run's past included, against ``train.seconds``, read by the loop at the first
step and at log steps (where the processes of a torchrun agree on them).

The growth of progressive GANs (Karras et al. 2018): which stage, which alpha. Stage 0 (4 x 4)
trains for ``stage_steps`` steps; every later stage first fades its new block in over
``fade_steps`` steps (alpha rising linearly from 0 to 1), then trains at alpha = 1 for
``stage_steps`` steps; the last stage keeps going to the end of the run. The schedule is a pure
function of the step, so a run resumed anywhere (across a stage boundary too) takes the same
stages and alphas as one that never stopped; G and D also keep their stage and alpha as buffers
in every checkpoint, and the checkpoint's metadata records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ganforge.nets.progressive import ProgressiveDiscriminator, ProgressiveGenerator


def stage_at(t: int, stages: int, stage_steps: int, fade_steps: int) -> tuple[int, float]:
    """(stage, alpha) for the step that follows ``t`` steps taken (t = 0: the first step)."""
    if t < stage_steps or stages == 1:
        return 0, 1.0
    period = fade_steps + stage_steps
    stage, into = divmod(t - stage_steps, period)
    stage += 1
    if stage >= stages:  # past the schedule: the last stage, fully faded in
        return stages - 1, 1.0
    alpha = min(1.0, (into + 1) / fade_steps) if fade_steps else 1.0
    return stage, alpha


def steps_to_grow(stages: int, stage_steps: int, fade_steps: int) -> int:
    """Steps until the last stage is fully faded in (and has trained ``stage_steps``)."""
    return stages * stage_steps + (stages - 1) * fade_steps


def growing(modules: dict[str, nn.Module]) -> list[Any]:
    """The progressive nets among ``modules`` (G, D and an averaged copy of G, if any)."""
    kinds = (ProgressiveGenerator, ProgressiveDiscriminator)
    return [m for m in modules.values() if isinstance(m, kinds)]


@dataclass(frozen=True)
class Growth:
    """Where a growing net stands at a step: its stage and fade-in alpha, and the stage that
    ended with the step before (whose last samples the loop keeps), or None."""

    stage: int
    alpha: float
    ended: int | None


def growth_at(step: int, stages: int, stage_steps: int, fade_steps: int) -> Growth:
    """The growth at step ``step`` (1-based): what the loop sets on the nets before it."""
    stage, alpha = stage_at(step - 1, stages, stage_steps, fade_steps)
    ended = None
    if step > 1:
        before, _ = stage_at(step - 2, stages, stage_steps, fade_steps)
        ended = before if before != stage else None
    return Growth(stage, alpha, ended)


class GrowthState:
    """The stage and alpha in force, as a named state of the checkpoints: recorded in each
    checkpoint's metadata and set back on the nets when a run resumes (the schedule would give
    them again at the next step; the record says where a file stands)."""

    def __init__(self, nets: list[Any]) -> None:
        self.nets = nets

    def state_dict(self) -> dict[str, Any]:
        return {"stage": int(self.nets[0].stage), "alpha": float(self.nets[0].alpha)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for m in self.nets:
            m.set_stage(int(state["stage"]), float(state["alpha"]))


def lr_factor(step: int, steps: int, decay_from: float) -> float:
    """The share of the base learning rates used at ``step`` (1-based) of a horizon of
    ``steps``: 1 up to step ``decay_from * steps``, then a straight line that would reach 0 one
    step after the last (every step still learns): min(1, (steps + 1 - step) / (steps + 1 -
    decay_from * steps)). Past the horizon, the last step's share. Constant then linear decay,
    as CycleGAN trains (Zhu et al. 2017, sec. 4)."""
    start = decay_from * steps
    return min(1.0, (steps + 1 - min(step, steps)) / (steps + 1 - start))


def lr_factor_on_clock(elapsed: float, seconds: float, decay_from: float) -> float:
    """``lr_factor`` for a run on the clock (``train.seconds``): the horizon is the budget of
    seconds, so the share is 1 up to ``decay_from * seconds`` of training, then falls linearly
    to 0 at ``seconds``: min(1, (seconds - elapsed) / (seconds - decay_from * seconds)). The
    step begun once the budget is spent, the run's last, is taken at 0 (it learns nothing)."""
    if decay_from >= 1:
        return 1.0
    left = max(0.0, seconds - elapsed)
    return min(1.0, left / (seconds * (1.0 - decay_from)))


class Horizon:
    """The steps the schedules are drawn over, as a named state of the checkpoints."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])


def resume_note(horizon: int, steps: int, decays: bool, noise: bool) -> str | None:
    """One line for a resumed run whose budget ``steps`` differs from its schedules' horizon,
    when it has a schedule (learning-rate decay, instance noise); None otherwise."""
    names = [
        n for n, on in (("the learning-rate decay", decays), ("the instance noise", noise)) if on
    ]
    if steps == horizon or not names:
        return None
    past = (
        f"; steps {horizon + 1}-{steps} run at the last step's rates and without noise"
        if steps > horizon
        else ""
    )
    return (
        f"train.steps is now {steps}, but {' and '.join(names)} keep(s) the run's horizon of "
        f"{horizon} steps, so that the steps already taken keep their maths{past}"
    )
