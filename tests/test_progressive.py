"""Progressive growing (Karras et al. 2018): stages, fade-in, equalised lr, pixelnorm, stddev."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganforge import nets
from ganforge.config import ModelConfig
from ganforge.nets import progressive as pg


def _nets(size=32, width=8, latent=6):
    torch.manual_seed(0)
    g, d = nets.build(
        ModelConfig(arch="progressive", latent_dim=latent, width=width), (1, size, size)
    )
    return g, d


def test_stage_counts_and_channels():
    assert [pg.n_stages(s) for s in (8, 16, 32, 64)] == [2, 3, 4, 5]
    # 4 * width up to 8 x 8, then halving: width 32 -> 128, 128, 64, 32, 16
    assert [pg.channels(r, 32) for r in (4, 8, 16, 32, 64)] == [128, 128, 64, 32, 16]
    with pytest.raises(Exception, match="size"):
        pg.n_stages(28)


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_at_every_stage(size):
    g, d = _nets(size)
    z = torch.randn(4, 6)
    for stage in range(pg.n_stages(size)):
        r = 4 * 2**stage
        for alpha in (0.0, 0.5, 1.0) if size == 32 else (0.5,):
            g.set_stage(stage, alpha)
            d.set_stage(stage, alpha)
            assert g.forward_stage(z, stage, alpha).shape == (4, 1, r, r)
            x = g(z)
            assert x.shape == (4, 1, size, size) and x.abs().max() <= 1
            assert d(x).shape == (4, 1)
            assert d.forward_stage(torch.randn(4, 1, r, r), stage, alpha).shape == (4, 1)


def test_generator_at_alpha_zero_is_the_upsampled_previous_stage_exactly():
    g, _ = _nets()
    z = torch.randn(5, 6)
    with torch.no_grad():
        for stage in range(1, 4):
            old = g.forward_stage(z, stage - 1, 1.0)
            new = g.forward_stage(z, stage, 0.0)
            assert torch.equal(new, F.interpolate(old, scale_factor=2.0, mode="nearest"))
            # and at full size, through forward()
            g.set_stage(stage - 1, 1.0)
            a = g(z)
            g.set_stage(stage, 0.0)
            assert torch.equal(g(z), a)


def test_discriminator_at_alpha_zero_is_the_previous_stage_on_pooled_images():
    _, d = _nets()
    with torch.no_grad():
        for stage in range(1, 4):
            r = 4 * 2**stage
            x = torch.randn(4, 1, r, r)
            old = d.forward_stage(F.avg_pool2d(x, 2), stage - 1, 1.0)
            assert torch.equal(d.forward_stage(x, stage, 0.0), old)


def test_at_alpha_one_the_old_branch_is_gone():
    g, d = _nets()
    z = torch.randn(4, 6)
    stage = 2
    x = torch.randn(4, 1, 16, 16)
    g_out, d_out = g.forward_stage(z, stage, 1.0), d.forward_stage(x, stage, 1.0)
    with torch.no_grad():  # the previous stage's toRGB / fromRGB no longer matter
        g.to_rgb[stage - 1].weight.mul_(7.0).add_(1.0)
        d.from_rgb[stage - 1][0].weight.mul_(7.0).add_(1.0)
    assert torch.equal(g.forward_stage(z, stage, 1.0), g_out)
    assert torch.equal(d.forward_stage(x, stage, 1.0), d_out)
    # at alpha = 0.5 they do
    assert not torch.equal(g.forward_stage(z, stage, 0.5), g_out)


def test_fade_is_the_linear_mix_of_both_branches():
    g, _ = _nets()
    z = torch.randn(3, 6)
    with torch.no_grad():
        a0 = torch.atanh(g.forward_stage(z, 2, 0.0).clamp(-0.999999, 0.999999).double())
        a1 = torch.atanh(g.forward_stage(z, 2, 1.0).clamp(-0.999999, 0.999999).double())
        mid = g.forward_stage(z, 2, 0.25).double()
    torch.testing.assert_close(mid, torch.tanh(0.75 * a0 + 0.25 * a1), atol=1e-4, rtol=1e-4)


def test_equalized_layers_scale_weights_by_he_constant():
    torch.manual_seed(0)
    lin = pg.EqualizedLinear(50, 3)
    x = torch.randn(2, 50)
    expected = x.numpy() @ (lin.weight.detach().numpy().T * math.sqrt(2 / 50))
    np.testing.assert_allclose(lin(x).detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    conv = pg.EqualizedConv2d(4, 2, 3)
    xi = torch.randn(1, 4, 5, 5)
    ref = F.conv2d(xi, conv.weight * math.sqrt(2 / 36), padding=1)
    torch.testing.assert_close(conv(xi), ref)
    # the stored weights are N(0, 1): Adam's steps act the same on every layer
    assert abs(float(pg.EqualizedLinear(400, 400).weight.detach().std()) - 1) < 0.01


def test_pixelnorm_gives_unit_mean_square_per_pixel():
    x = torch.tensor([[[[3.0]], [[4.0]]]])  # one pixel, channels (3, 4): mean square 12.5
    out = pg.PixelNorm()(x)
    torch.testing.assert_close(out.flatten(), torch.tensor([3.0, 4.0]) / math.sqrt(12.5))


def test_minibatch_stddev_by_hand():
    x = torch.tensor([0.0, 2.0, 1.0, 5.0]).view(4, 1, 1, 1)
    out = pg.MinibatchStdDev(group=2)(x)
    assert out.shape == (4, 2, 1, 1)
    # groups are samples {0, 2} and {1, 3}: biased std of (0, 1) is 0.5, of (2, 5) is 1.5
    np.testing.assert_allclose(out[:, 1].flatten().numpy(), [0.5, 1.5, 0.5, 1.5], atol=1e-6)
    torch.testing.assert_close(out[:, :1], x)
    # a batch the group does not divide forms one group: std of all five
    x5 = torch.arange(5.0).view(5, 1, 1, 1)
    np.testing.assert_allclose(
        pg.MinibatchStdDev(4)(x5)[:, 1].flatten().numpy(), [np.std(np.arange(5.0))] * 5, rtol=1e-6
    )


def test_discriminator_mixes_the_batch():
    from ganforge.train.step import batch_independent

    _, d = _nets()
    assert not batch_independent(d)


def test_schedule_by_hand():
    from ganforge.train.schedule import stage_at, steps_to_grow

    # 4 stages, 3 steps per stage, fades of 2 steps: 0 0 0 | 1(.5) 1(1) 1 1 1 | 2(.5) ...
    got = [stage_at(t, 4, 3, 2) for t in range(18)]
    assert got[:3] == [(0, 1.0)] * 3
    assert got[3:8] == [(1, 0.5), (1, 1.0), (1, 1.0), (1, 1.0), (1, 1.0)]
    assert got[8:10] == [(2, 0.5), (2, 1.0)]
    assert got[13] == (3, 0.5) and got[17] == (3, 1.0) and stage_at(10**6, 4, 3, 2) == (3, 1.0)
    assert steps_to_grow(4, 3, 2) == 18
    assert stage_at(5, 4, 3, 0) == (1, 1.0)  # no fade: the new block takes over at once


PG = [
    "model.arch=progressive",
    "model.width=4",
    "model.latent_dim=8",
    "data.image_size=32",
    "data.limit=64",
    "train.batch_size=8",
    "train.stage_steps=3",
    "train.fade_steps=2",
    "train.log_every=2",
    "train.sample_every=100",
    "train.ckpt_every=100",
    "train.threads=1",
]


@pytest.mark.slow  # two runs and a resume across a stage (about 6 s)
def test_progressive_run_resumes_exactly_across_a_stage_boundary(cli, tmp_path):
    """Stop inside stage 1's fade, resume to the end of stage 2's: the weights and metrics of
    a run that never stopped, and one sample grid per finished stage."""
    import json

    from safetensors.torch import load_file

    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert cli("train", "--out", whole, "--steps", "10", "--quiet", *PG)[0] == 0
    assert cli("train", "--out", parts, "--steps", "4", "--quiet", *PG)[0] == 0
    assert cli("train", "--resume", parts, "--steps", "10", "--quiet")[0] == 0
    ckpt = "checkpoints/step-000010.safetensors"
    a, b = load_file(whole / ckpt), load_file(parts / ckpt)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["G.stage"]) == 2 and float(a["D.alpha"]) == 1.0

    def rows(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [
            {k: v for k, v in json.loads(r).items() if k not in ("img_per_s", "elapsed_s")}
            for r in lines
        ]

    assert rows(whole) == rows(parts)
    names = sorted(p.name for p in (whole / "samples").glob("stage-*.png"))
    assert names == ["stage-0-4x4.png", "stage-1-8x8.png"]
    # the growth state is a named state of every checkpoint
    from ganforge import checkpoint

    for run in (whole, parts):
        _, meta = checkpoint.read(run / ckpt)
        assert meta["states"]["growth"] == {"stage": 2, "alpha": 1.0}
    # the report shows each stage's last samples, in stage order
    assert cli("report", whole)[0] == 0
    text = (whole / "report.html").read_text()
    assert "<h2>Samples at the end of each stage</h2>" in text
    assert text.index("<figcaption>stage 0 4x4</figcaption>") < text.index(
        "<figcaption>stage 1 8x8</figcaption>"
    )
