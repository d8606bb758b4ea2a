"""The growth schedule of progressive GANs (Karras et al. 2018): which stage, which alpha.

Stage 0 (4 x 4) trains for ``stage_steps`` steps; every later stage first fades its new block in
over ``fade_steps`` steps (alpha rising linearly from 0 to 1), then trains at alpha = 1 for
``stage_steps`` steps; the last stage keeps going to the end of the run. The schedule is a pure
function of the step, so a run resumed anywhere (across a stage boundary too) takes the same
stages and alphas as one that never stopped; G and D also keep their stage and alpha as buffers
in every checkpoint, and the checkpoint's metadata records them.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ganforge.nets.progressive import START, ProgressiveDiscriminator, ProgressiveGenerator


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


def on_step(trainer: Any) -> None:
    """Before step ``trainer.step``: set every progressive net's stage and alpha; when the step
    before it ended a stage, save that stage's last samples as ``samples/stage-S-RxR.png``."""
    nets = growing(trainer.modules)
    if not nets:
        return
    t = trainer.cfg.train
    total = nets[0].stages
    stage, alpha = stage_at(trainer.step - 1, total, t.stage_steps, t.fade_steps)
    if trainer.step > 1:
        before, _ = stage_at(trainer.step - 2, total, t.stage_steps, t.fade_steps)
        if before != stage:
            res = START * 2**before
            trainer.save_samples(trainer.run.path / "samples" / f"stage-{before}-{res}x{res}.png")
    for m in nets:
        m.set_stage(stage, alpha)


class Growth:
    """The stage and alpha in force, as a named state of the checkpoints (``Trainer.states``):
    recorded in each checkpoint's metadata and set back on the nets when a run resumes (the
    schedule would give them again at the next step; the record says where a file stands)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        nets = growing(self.trainer.modules)
        return {"stage": int(nets[0].stage), "alpha": float(nets[0].alpha)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for m in growing(self.trainer.modules):
            m.set_stage(int(state["stage"]), float(state["alpha"]))
