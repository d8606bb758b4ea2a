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


def test_fade_is_the_linear_mix_of_both_images():
    """G blends its two images (after tanh), as fade_reals blends the reals: one linear blend
    in pixel space on both sides of D."""
    g, _ = _nets()
    z = torch.randn(3, 6)
    with torch.no_grad():
        for stage in (1, 2, 3):
            a0, a1 = g.forward_stage(z, stage, 0.0), g.forward_stage(z, stage, 1.0)
            mid = g.forward_stage(z, stage, 0.25)
            torch.testing.assert_close(mid, 0.75 * a0 + 0.25 * a1, atol=1e-6, rtol=0)
            assert mid.abs().max() <= 1


def test_fade_reals_by_hand():
    # one 8 x 8 image at stage 1 (8 x 8): the top-left 2 x 2 block holds (1, 0; 0, 0), whose
    # mean is 0.25; at alpha = 0.25: (1, 0) -> 0.75 * 0.25 + 0.25 * (1, 0) = (0.4375, 0.1875)
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 0, 0] = 1.0
    out = pg.fade_reals(x, 1, 0.25)
    want = torch.zeros(1, 1, 8, 8)
    want[0, 0, :2, :2] = torch.tensor([[0.4375, 0.1875], [0.1875, 0.1875]])
    torch.testing.assert_close(out, want, atol=0, rtol=0)
    # the same image at 16 x 16 (each pixel a 2 x 2 block): pooled to 8 x 8 first, the
    # blend returned at 16 x 16 by nearest upsampling
    big = F.interpolate(x, scale_factor=2.0, mode="nearest")
    torch.testing.assert_close(
        pg.fade_reals(big, 1, 0.25), F.interpolate(want, scale_factor=2.0, mode="nearest")
    )
    # alpha = 0: the coarse image; alpha = 1 and stage 0: untouched (D pools them itself)
    torch.testing.assert_close(pg.fade_reals(x, 1, 0.0)[0, 0, :2, :2], torch.full((2, 2), 0.25))
    assert pg.fade_reals(x, 1, 1.0) is x and pg.fade_reals(big, 0, 0.5) is big
    with pytest.raises(ValueError, match="pooled"):
        pg.fade_reals(torch.zeros(1, 1, 4, 4), 1, 0.5)


def test_faded_reals_through_d_match_the_faded_generator_exactly():
    """A G whose images are the reals' (previous stage: the pooled reals) is, for D, the reals
    at every alpha: D cannot tell them apart by the fade alone."""
    _, d = _nets()
    torch.manual_seed(1)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        for stage in (1, 2, 3):
            r = 4 * 2**stage
            new = F.avg_pool2d(x, 32 // r)  # G's new image: the real at r
            old = F.avg_pool2d(new, 2)  # G's previous stage's image: the real at r / 2
            for alpha in (0.0, 0.3, 0.9):
                d.set_stage(stage, alpha)
                fake = torch.lerp(F.interpolate(old, scale_factor=2.0), new, alpha)
                fake = F.interpolate(fake, scale_factor=float(32 // r))
                real = d.fade_reals(x)
                torch.testing.assert_close(real, fake, atol=1e-6, rtol=0)
                torch.testing.assert_close(d(real), d(fake), atol=1e-5, rtol=0)


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


def test_equalized_lr_constants_of_the_built_nets():
    """He's constant sqrt(2 / fan_in) everywhere but: G's first dense sqrt(2) / 4 / sqrt(latent),
    the toRGB layers and D's last dense gain 1; every weight N(0, 1), every bias 0."""
    g, d = _nets(width=8, latent=6)  # channels 32, 32, 16, 8 at 4, 8, 16, 32
    assert g.head.scale == pytest.approx(math.sqrt(2) / 4 / math.sqrt(6))
    assert g.head.weight.shape == (32 * 16, 6)
    assert [m.scale for m in g.to_rgb] == pytest.approx([1 / math.sqrt(c) for c in (32, 32, 16, 8)])
    assert g.first[2].scale == pytest.approx(math.sqrt(2 / (32 * 9)))
    # the 16 x 16 block: 3 x 3 convs 32 -> 16, 16 -> 16
    assert [g.blocks[1][i].scale for i in (0, 3)] == pytest.approx(
        [math.sqrt(2 / (32 * 9)), math.sqrt(2 / (16 * 9))]
    )
    assert [f[0].scale for f in d.from_rgb] == pytest.approx([math.sqrt(2)] * 4)  # fan_in 1
    conv, dense, last = d.last[1], d.last[4], d.last[6]
    assert conv.weight.shape[1] == 32 + 1  # the stddev map joins the 4 x 4 block's input
    assert conv.scale == pytest.approx(math.sqrt(2 / (33 * 9)))
    assert dense.scale == pytest.approx(math.sqrt(2 / (32 * 16)))
    assert last.scale == pytest.approx(1 / math.sqrt(32))
    for net in (g, d):
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                assert not p.any(), name
    w = torch.cat([p.detach().flatten() for n, p in g.named_parameters() if "weight" in n])
    assert abs(float(w.mean())) < 0.05 and abs(float(w.std()) - 1) < 0.05


def test_generator_pixel_normalises_z():
    """normalize_latents: z and c z (c > 0) give the same images."""
    g, _ = _nets()
    z = torch.randn(4, 6)
    with torch.no_grad():
        for stage, alpha in ((0, 1.0), (2, 0.5), (3, 1.0)):
            torch.testing.assert_close(
                g.forward_stage(3.5 * z, stage, alpha), g.forward_stage(z, stage, alpha)
            )


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


def test_batchnorm_in_d_follows_each_convolution_but_from_rgb():
    """model.d_batchnorm=true: BatchNorm after every 3 x 3 convolution of D (two per block and
    the last block's one), none after fromRGB. At its initial running statistics (mean 0,
    variance 1) an evaluating BatchNorm divides by sqrt(1 + eps) only, so D in eval mode gives
    the plain D's logit (same weights) with each normalised layer scaled by that; in training
    mode it normalises by the batch."""
    torch.manual_seed(0)
    d = pg.ProgressiveDiscriminator((1, 32, 32), width=8)
    torch.manual_seed(0)
    dbn = pg.ProgressiveDiscriminator((1, 32, 32), width=8, batchnorm=True)
    built = nets.build(
        ModelConfig(arch="progressive", latent_dim=6, width=8, d_batchnorm=True), (1, 32, 32)
    )[1]
    for net in (dbn, built):
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 2 * 3 + 1
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in dbn.from_rgb.modules())
    # the same convolution weights (BatchNorm draws no random numbers)
    plain = [p for n, p in d.named_parameters()]
    convs = [p for n, p in dbn.named_parameters() if not _is_bn(dbn, n)]
    assert all(torch.equal(a, b) for a, b in zip(plain, convs, strict=True))
    x = torch.randn(8, 1, 32, 32)
    for stage in range(4):
        d.set_stage(stage, 1.0)
        dbn.set_stage(stage, 1.0)
        dbn.eval()
        for m in dbn.modules():  # eps 0: evaluating BatchNorm at its initial statistics = identity
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eps = 0.0
        torch.testing.assert_close(dbn(x), d(x), rtol=1e-5, atol=1e-6)
    for m in dbn.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-5
    dbn.train()  # in training mode a sample's logit depends on the others in its batch
    first = dbn(x)[0]
    assert not torch.allclose(dbn(torch.cat([x[:1], 3 * x[1:]]))[0], first)


def _is_bn(net, name):
    return isinstance(net.get_submodule(name.rsplit(".", 1)[0]), torch.nn.BatchNorm2d)


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


def test_growth_at_by_hand():
    """The preset's schedule (300 steps a stage, fades of 300), 1-based steps: alpha rises by
    1/300 a step from the first step of a fade and reaches 1 on its last."""
    from ganforge.train.schedule import growth_at

    def at(step):
        gr = growth_at(step, 4, 300, 300)
        return gr.stage, gr.alpha, gr.ended

    assert at(1) == (0, 1.0, None) and at(300) == (0, 1.0, None)
    assert at(301) == (1, pytest.approx(1 / 300), 0)  # stage 0's samples kept before it
    assert at(450) == (1, pytest.approx(0.5), None)
    assert at(600) == (1, 1.0, None) and at(900) == (1, 1.0, None)
    assert at(901) == (2, pytest.approx(1 / 300), 1)
    assert at(1501)[:2] == (3, pytest.approx(1 / 300)) and at(1800)[:2] == (3, 1.0)
    assert at(2400) == (3, 1.0, None)


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
@pytest.mark.parametrize("batches", [[], ["train.stage_batch=8,4,6,2"]])
def test_progressive_run_resumes_exactly_across_a_stage_boundary(cli, tmp_path, batches):
    """Stop inside stage 1's fade, resume to the end of stage 2's: the weights and metrics of
    a run that never stopped, and one sample grid per finished stage; with a batch size per
    stage too."""
    import json

    from safetensors.torch import load_file

    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert cli("train", "--out", whole, "--steps", "10", "--quiet", *PG, *batches)[0] == 0
    assert cli("train", "--out", parts, "--steps", "4", "--quiet", *PG, *batches)[0] == 0
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


def test_a_run_that_ends_in_its_last_stage_keeps_that_stage_grid(cli, tmp_path):
    """Stages end at steps 3, 8 and 13; the last (32 x 32, faded in by step 15) ends with the
    run: its grid is the run's last grid. A run that ends while it fades in keeps none."""
    done, fading = tmp_path / "done", tmp_path / "fading"
    assert cli("train", "--out", done, "--steps", "17", "--quiet", *PG)[0] == 0
    names = sorted(p.name for p in (done / "samples").glob("stage-*.png"))
    assert names == ["stage-0-4x4.png", "stage-1-8x8.png", "stage-2-16x16.png", "stage-3-32x32.png"]
    last = (done / "samples" / "stage-3-32x32.png").read_bytes()
    assert last == (done / "samples" / "step-000017.png").read_bytes()
    assert cli("train", "--out", fading, "--steps", "14", "--quiet", *PG)[0] == 0
    assert not (fading / "samples" / "stage-3-32x32.png").exists()


def test_training_fades_the_reals_with_the_nets(cli, tmp_path, monkeypatch):
    """Each step's reals reach the step blended by fade_reals at the step's stage and alpha;
    G, D and G's moving average (stab.ema) all carry that stage and alpha."""
    from ganforge.train import loop
    from ganforge.train.step import GANStep

    faded, seen = [], []
    real_fade, real_call = loop.fade_reals, GANStep.__call__

    def fade(x, stage, alpha):
        out = real_fade(x, stage, alpha)
        faded.append((stage, alpha, x, out))
        return out

    def call(self, reals, *args, **kwargs):
        nets_ = (self.G, self.D, self.switches.ema.module)
        seen.append(([(int(m.stage), float(m.alpha)) for m in nets_], reals[0]))
        return real_call(self, reals, *args, **kwargs)

    monkeypatch.setattr(loop, "fade_reals", fade)
    monkeypatch.setattr(GANStep, "__call__", call)
    args = ("train", "--out", tmp_path / "run", "--steps", "9", "--quiet", *PG, "stab.ema=0.5")
    assert cli(*args)[0] == 0
    # 3 steps at 4 x 4, fades of 2 steps: (stage, alpha) of steps 1..9
    want = [(0, 1.0)] * 3 + [(1, 0.5)] + [(1, 1.0)] * 4 + [(2, 0.5)]
    assert [f[:2] for f in faded] == want
    assert [s[0] for s in seen] == [[w] * 3 for w in want]
    for (stage, alpha, x, out), (_, real) in zip(faded, seen, strict=True):
        assert real is out
        if alpha < 1:  # blended: (1 - alpha) coarse + alpha fine, at the stage's resolution
            r = 4 * 2**stage
            fine = F.avg_pool2d(x, 32 // r)
            coarse = F.interpolate(F.avg_pool2d(fine, 2), scale_factor=2.0)
            blend = F.interpolate(torch.lerp(coarse, fine, alpha), scale_factor=32.0 / r)
            torch.testing.assert_close(out, blend)
            assert not torch.equal(out, x)


def test_each_stage_trains_on_its_own_batch_size(cli, tmp_path, monkeypatch):
    """train.stage_batch=16,4,6,2: stages end at steps 3, 8 and 13, so steps 1..17 take
    3 batches of 16, 5 of 4, 5 of 6 and 4 of 2 (real and fake alike), drawn in one shuffled
    order (the sampler's position after them)."""
    from ganforge import checkpoint
    from ganforge.train.step import GANStep

    seen, real_call = [], GANStep.__call__

    def call(self, reals, *args, **kwargs):
        seen.append((int(self.G.stage), len(reals[0])))
        return real_call(self, reals, *args, **kwargs)

    monkeypatch.setattr(GANStep, "__call__", call)
    run = tmp_path / "run"
    args = ("train", "--out", run, "--steps", "17", "--quiet", *PG, "train.stage_batch=16,4,6,2")
    assert cli(*args)[0] == 0
    assert seen == [(0, 16)] * 3 + [(1, 4)] * 5 + [(2, 6)] * 5 + [(3, 2)] * 4
    _, meta = checkpoint.read(run / "checkpoints" / "step-000017.safetensors")
    drawn = 48 + 20 + 30 + 8  # 106 of 64 samples: the second epoch's first 42
    assert meta["states"]["sampler"]["pos"] == drawn - 64


def test_throughput_counts_the_samples_of_each_step(monkeypatch):
    """img_per_s: the samples of the interval's steps (16 + 16 + 4) over its seconds (2)."""
    from ganforge.train import loop

    clock = iter([10.0, 12.0])
    monkeypatch.setattr(loop.time, "perf_counter", lambda: next(clock))
    meter = loop._Meter()
    stats = {k: torch.tensor(1.0) for k in loop.STATS}
    for samples in (16, 16, 4):
        meter.add(stats, samples)
    assert meter.row(3, stats)["img_per_s"] == 18.0


def test_a_run_on_the_clock_that_ends_before_the_last_resolution_says_so(cli, tmp_path):
    """train.seconds spent in stage 0 (4 x 4 of 4 stages): the run ends, finished, and warns
    that its samples are not at the last resolution."""
    run = tmp_path / "run"
    with pytest.warns(UserWarning) as caught:
        code, _, _ = cli("train", "--out", run, "--steps", "1000", *PG, "train.seconds=1e-9")
    assert code == 0
    said = [str(w.message) for w in caught if "train.seconds" in str(w.message)]
    assert said == [
        "train.seconds=1e-09 ran out at step 1, before the last resolution: the samples are at "
        "a lower one (raise train.seconds)"
    ]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000001.safetensors"]
