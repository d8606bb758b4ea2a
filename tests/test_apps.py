"""The image-to-image tasks (apps/): losses, pool, layers, colour and figures by hand-computed
values; exact resume; `ganforge translate` and its one-line errors."""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.testing import assert_close

from ganforge import checkpoint
from ganforge.apps.step import ImagePool, content_l1, cycle_l1, identity_l1
from ganforge.apps.train import train_app
from ganforge.apps.translate import tiled
from ganforge.cli import main
from ganforge.config import Config, build
from ganforge.data.lab import join_lab, lab_to_rgb, rgb_to_lab, split_lab
from ganforge.data.pairs import average_pool, thicken
from ganforge.metrics.image import colourfulness, ink, psnr, ssim
from ganforge.nets.translate import PatchD, ResnetG, SRNet, UNet

# Tiny nets and a few steps: each run below takes about a second.
TINY = {
    "mnist-sr": ["model.width=4", "app.blocks=1", "train.batch_size=4"],
    "mnist-thicken": ["model.width=2", "app.blocks=1", "train.batch_size=2", "app.pool=3"],
    "colorize": ["model.width=4", "train.batch_size=2", "app.patch=16"],
    "photo-sr": ["model.width=4", "app.blocks=1", "train.batch_size=2", "app.patch=16"],
}
QUICK = ["train.log_every=2", "train.sample_every=3", "train.ckpt_every=3", "train.keep_ckpts=5"]


def test_content_loss_is_the_mean_absolute_difference():
    fake = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert_close(content_l1(fake, torch.zeros(2, 2)), torch.tensor(1.5))  # (0+1+2+3)/4


def test_cycle_and_identity_losses_add_both_directions():
    a, b = torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0)
    # |1 - 0| + |1.5 - 2| = 1 + 0.5
    assert_close(cycle_l1(a, a + 1, b, b - 0.5), torch.tensor(1.5))
    assert_close(identity_l1(a, a - 0.25, b, b), torch.tensor(0.25))


def test_image_pool_fills_then_swaps_half_the_time_and_resumes_exactly():
    pool = ImagePool(2, seed=0)
    x = [torch.full((1, 1, 1, 1), float(i)) for i in range(40)]
    assert_close(pool.query(x[0]), x[0])  # filling: the new image itself
    assert_close(pool.query(x[1]), x[1])
    assert len(pool) == 2
    twin = ImagePool(2, seed=5)
    twin.load_state_dict(pool.state_dict())
    outs = [float(pool.query(x[i])) for i in range(2, 40)]
    assert outs == [float(twin.query(x[i])) for i in range(2, 40)]  # resumed: the same draws
    old = [v for i, v in enumerate(outs) if v != i + 2]  # an older image came back
    assert 9 <= len(old) <= 29  # p = 1/2 over 38 draws
    assert all(v <= i + 2 for i, v in enumerate(outs))  # never a future image
    assert_close(ImagePool(0).query(x[3]), x[3])  # size 0: no history


def test_lab_of_known_colours_and_round_trip():
    rgb = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 3, 1)
    lab = rgb_to_lab(rgb)[0, :, :, 0].T
    # sRGB red in CIE L*a*b* (D65): 53.24, 80.09, 67.20; white 100, 0, 0; black 0, 0, 0
    assert_close(lab[0], torch.tensor([53.24, 80.09, 67.20]), atol=0.02, rtol=0)
    assert_close(lab[1], torch.tensor([100.0, 0.0, 0.0]), atol=0.02, rtol=0)
    assert_close(lab[2], torch.zeros(3), atol=1e-3, rtol=0)
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    assert_close(lab_to_rgb(rgb_to_lab(x)), x, atol=1e-4, rtol=0)
    assert_close(join_lab(*split_lab(x)), x, atol=1e-4, rtol=0)


def test_colourfulness_of_known_images():
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    # rg = 255, yb = 127.5, no spread: 0.3 sqrt(255^2 + 127.5^2)
    assert_close(colourfulness(red), torch.tensor([0.3 * math.hypot(255, 127.5)]))
    assert_close(colourfulness(torch.full((1, 3, 2, 2), 0.4)), torch.zeros(1))  # grey
    half = red.clone()
    half[..., 1, :] = 0  # half red, half black: rg 255 / 0, yb 127.5 / 0
    spread = math.hypot(127.5, 63.75)  # the std of each is half its range
    assert_close(colourfulness(half), torch.tensor([spread + 0.3 * spread]))


def test_psnr_ssim_and_ink_of_known_pairs():
    x, y = torch.zeros(1, 1, 16, 16), torch.full((1, 1, 16, 16), 0.1)
    assert_close(psnr(x, y), torch.tensor([20.0]))  # 10 log10(1 / 0.01)
    assert_close(ssim(y, y), torch.tensor([1.0]))
    digit = -torch.ones(1, 1, 4, 4)
    digit[..., 0, :] = 1.0  # a quarter of the pixels white
    assert_close(ink(digit), torch.tensor([0.25]))


def test_low_resolution_input_and_dilation_by_hand():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert_close(average_pool(x, 2), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    dot = -torch.ones(1, 1, 5, 5)
    dot[..., 2, 2] = 1.0
    want = -torch.ones(1, 1, 5, 5)
    want[..., 1:4, 1:4] = 1.0  # grey_dilation 3 x 3: the dot becomes a 3 x 3 square
    assert_close(thicken(dot), want)


def test_shapes_of_the_nets():
    assert SRNet(1, 8, 1, scale=4)(torch.zeros(2, 1, 7, 7)).shape == (2, 1, 28, 28)
    assert SRNet(1, 8, 1, scale=2)(torch.zeros(2, 1, 14, 14)).shape == (2, 1, 28, 28)
    assert UNet(1, 2, 4)(torch.zeros(2, 1, 32, 24)).shape == (2, 2, 32, 24)
    assert ResnetG(1, 2, 1)(torch.zeros(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    assert PatchD(2, 4)(torch.zeros(2, 2, 28, 28)).shape == (2, 1, 7, 7)
    # pixel shuffle: [N, 4C, H, W] -> [N, C, 2H, 2W], channel 4c + 2i + j to pixel (i, j)
    ps = torch.nn.PixelShuffle(2)(torch.arange(4.0).view(1, 4, 1, 1))
    assert_close(ps, torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]]))


def test_sr_output_is_bicubic_plus_a_residual():
    net = SRNet(1, 4, 1, scale=2)
    torch.nn.init.zeros_(net.tail.weight)
    torch.nn.init.zeros_(net.tail.bias)
    x = torch.rand(1, 1, 5, 5)
    up = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert_close(net(x), up)


def test_tiles_give_the_whole_image_result():
    net = SRNet(1, 4, 1, scale=2).eval()
    x = torch.rand(1, 1, 20, 30, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        assert_close(tiled(net, x, 1, tile=8, overlap=6), net(x), atol=1e-5, rtol=0)


def _train(preset: str, out: Path, steps: int, *extra: str) -> Config:
    cfg = build(preset, overrides=[*TINY[preset], *QUICK, f"train.steps={steps}", *extra])
    train_app(cfg, out, quiet=True)
    return cfg


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    tensors, _ = checkpoint.read(checkpoint.path_for(run / "checkpoints", step))
    return {k: v for k, v in tensors.items() if not k.startswith("meter.")}


@pytest.mark.parametrize(
    ("preset", "extra"),
    [
        ("mnist-sr", []),
        ("mnist-sr", ["stab.ema=0.9", "stab.ema_rampup=1"]),  # G's average resumes too
        # the pools and the patch generator: a few seconds each, in the slow tier
        pytest.param("mnist-thicken", [], marks=pytest.mark.slow),
        pytest.param("colorize", [], marks=pytest.mark.slow),
    ],
)
def test_a_run_stopped_and_resumed_matches_the_uninterrupted_one_bit_for_bit(
    preset, extra, tmp_path
):
    run = tmp_path / "run"
    _train(preset, run, 6, *extra)
    whole = _weights(run, 6)
    # the crash: the step-6 checkpoint and the lines after step 3 never written
    checkpoint.path_for(run / "checkpoints", 6).unlink()
    train_app(Config(), resume=run, quiet=True)
    resumed = _weights(run, 6)
    assert whole.keys() == resumed.keys()
    for k in whole:  # weights, both Adams, data order, the pools, the RNGs
        assert torch.equal(whole[k], resumed[k]), k
    steps = [int(line.split(",")[0].split(":")[1]) for line in (run / "metrics.jsonl").open()]
    assert steps == [2, 4, 6]


def test_the_average_of_g_is_kept_and_is_what_translate_uses(tmp_path):
    """stab.ema with ramp-up 1: the first update copies G, the second is the 0.5/0.5 blend
    (beta_at(1) = min(0.9, 0.5 ** (1 / 1))); the checkpoints hold both, translate the average."""
    from ganforge.apps.translate import load_translator

    run = tmp_path / "run"
    _train("mnist-sr", run, 2, "stab.ema=0.9", "stab.ema_rampup=1", "train.ckpt_every=1")
    one, two = _weights(run, 1), _weights(run, 2)
    g1, g2 = checkpoint.subset(one, "G"), checkpoint.subset(two, "G")
    assert g1.keys() == checkpoint.subset(two, "G_ema").keys()
    for k in g1:
        assert torch.equal(checkpoint.subset(one, "G_ema")[k], g1[k]), k
        assert_close(
            checkpoint.subset(two, "G_ema")[k], 0.5 * g1[k] + 0.5 * g2[k], rtol=0, atol=1e-7
        )
    assert any(not torch.equal(g1[k], g2[k]) for k in g1)  # G moved: the blend is not G
    used = load_translator(run).nets["G"].state_dict()
    for k, v in checkpoint.subset(two, "G_ema").items():
        assert torch.equal(used[k], v), k


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("apps") / "sr"
    _train("mnist-sr", run, 3)
    return run


def test_translate_npy_and_image(sr_run, tmp_path):
    src = tmp_path / "small.npy"
    np.save(src, np.zeros((3, 1, 7, 7), dtype=np.float32) - 1)
    out = tmp_path / "big.npy"
    assert main(["translate", str(sr_run), "--input", str(src), "--out", str(out)]) == 0
    assert np.load(out).shape == (3, 1, 28, 28)
    img = tmp_path / "small.png"
    Image.fromarray(np.full((9, 13, 3), 200, dtype=np.uint8)).save(img)
    out_png = tmp_path / "big.png"
    assert main(["translate", str(sr_run), "--input", str(img), "--out", str(out_png)]) == 0
    assert Image.open(out_png).size == (52, 36)


@pytest.mark.parametrize(
    ("make", "out_name", "extra", "message"),
    [
        (None, "o.npy", [], "no such file"),
        (lambda p: p.with_suffix(".txt").write_text("x"), "o.png", [], "unsupported input"),
        (lambda p: np.save(p, np.zeros((2, 7, 7), np.float32)), "o.npy", [], "expected images"),
        (lambda p: np.save(p, np.full((1, 1, 7, 7), 3.0, np.float32)), "o.npy", [], "[-1, 1]"),
        (lambda p: np.save(p, np.zeros((1, 1, 7, 7), np.int64)), "o.npy", [], "float pixels"),
        (lambda p: np.save(p, np.zeros((1, 1, 7, 7), np.float32)), "o.png", [], "--out must"),
        (lambda p: np.save(p, np.zeros((1, 1, 7, 7), np.float32)), "o.npy", ["BA"], "AB"),
        (lambda p: p.write_bytes(b"not an array"), "o.npy", [], "not a readable"),
    ],
)
def test_translate_refuses_bad_input_in_one_line(
    sr_run, tmp_path, capsys, make, out_name, extra, message
):
    src = tmp_path / "in.npy"
    if make is not None:
        made = make(src)
        if src.with_suffix(".txt").exists() and not src.exists():
            src = src.with_suffix(".txt")
        del made
    args = ["translate", str(sr_run), "--input", str(src), "--out", str(tmp_path / out_name)]
    if extra:
        args += ["--direction", extra[0]]
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and message in err, err


def test_translate_refuses_a_gan_run(shared_run, tmp_path, capsys):
    src = tmp_path / "x.npy"
    np.save(src, np.zeros((1, 1, 28, 28), np.float32))
    code = main(
        ["translate", str(shared_run), "--input", str(src), "--out", str(tmp_path / "o.npy")]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and "not an image-to-image run" in err and len(err.splitlines()) == 1


def test_eval_measures_the_run_beside_bicubic_and_identity(sr_run, tmp_path, capsys):
    run = tmp_path / "sr"
    shutil.copytree(sr_run, run)
    assert main(["eval", str(run), "--n", "40", "--baseline", str(sr_run)]) == 0
    import json

    result = json.loads((run / "eval.json").read_text())
    methods = result["directions"]["AB"]
    assert set(methods) == {"gan", "bicubic", "identity", "l1", "truth"}
    assert methods["truth"]["psnr"] == pytest.approx(100.0)  # equal images: the cap
    assert methods["bicubic"]["psnr"] > methods["identity"]["psnr"]
    assert (run / "before-after.png").is_file()


def test_the_plain_l1_model_trains_from_the_command_line_with_its_report(tmp_path):
    out = tmp_path / "l1"
    args = ["train", "--preset", "mnist-sr", "--steps", "2", "--out", str(out), "--quiet"]
    assert main([*args, *TINY["mnist-sr"], "app.adv=0", "app.scale=2"]) == 0
    assert (out / "report.html").is_file() and (out / "loss.png").is_file()
    tensors, _ = checkpoint.read(checkpoint.path_for(out / "checkpoints", 2))
    assert not any(k.startswith("D.") for k in tensors)  # no D: content loss alone


def test_app_keys_are_checked_in_one_line(capsys):
    assert main(["train", "--preset", "mnist-sr", "app.scale=3"]) == 2
    assert "app.scale: must be 2 or 4" in capsys.readouterr().err
    assert main(["train", "--preset", "photo-sr", "--data", "cifar10"]) == 1  # a data error
    assert "cifar10: no such folder of colour images" in capsys.readouterr().err
    assert main(["train", "--preset", "colorize", "stab.ema=0.999"]) == 2
    assert "stab.ema: not for app.task=colorize" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("preset", "shape", "direction", "want"),
    [
        ("colorize", (1, 3, 20, 30), "AB", (1, 3, 20, 30)),  # padded to 24 x 32 and back
        ("colorize", (2, 1, 9, 9), "AB", (2, 3, 9, 9)),  # gray in, colour out
        ("mnist-thicken", (1, 1, 30, 29), "BA", (1, 1, 30, 29)),
        ("mnist-thicken", (1, 3, 28, 28), "AB", (1, 1, 28, 28)),  # colour: its luminance
    ],
)
def test_translate_keeps_any_size(preset, shape, direction, want):
    from ganforge.apps.tasks import TASKS, build_nets
    from ganforge.apps.translate import Translator, translate

    cfg = build(preset, overrides=TINY[preset])
    nets = {k: m.eval() for k, m in build_nets(cfg).items() if k in TASKS[cfg.app.task].generators}
    out = translate(Translator(cfg, nets, 0), torch.rand(shape) * 2 - 1, direction)
    assert out.shape == want
    assert float(out.min()) >= -1 and float(out.max()) <= 1


def test_the_tasks_refuse_several_processes(tmp_path, capsys):
    args = ["train", "--preset", "mnist-thicken", "--nproc", "2", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "--nproc does not train the image-to-image tasks" in err and len(err.splitlines()) == 1


def test_photo_sr_pairs_are_rgb_crops_and_their_average_pool():
    from ganforge.apps.tasks import build_data, build_nets

    cfg = build("photo-sr", overrides=TINY["photo-sr"])
    lr, hr = build_data(cfg).next(torch.device("cpu"))
    assert hr.shape == (2, 3, 16, 16) and lr.shape == (2, 3, 4, 4)
    assert float(hr.min()) >= -1 and float(hr.max()) <= 1
    assert_close(lr, hr.unflatten(-1, (4, 4)).unflatten(-3, (4, 4)).mean((-3, -1)))
    nets = build_nets(cfg)
    assert nets["G"](lr).shape == hr.shape  # RGB in, RGB out, x4
    assert nets["D"](torch.cat([hr, hr], 1)).shape[1] == 1  # D judges (input, image) pairs


def test_training_on_scikit_learn_photographs_alone_says_so(monkeypatch):
    from ganforge.data import pairs

    sklearn_only = {"china.jpg": np.zeros((4, 5, 3), np.uint8)}
    sklearn_only["flower.jpg"] = sklearn_only["china.jpg"]
    monkeypatch.setattr(pairs, "_sklearn_photos", lambda: sklearn_only)
    monkeypatch.setattr(pairs, "_skimage_photos", lambda include_test: {})
    with pytest.warns(UserWarning, match=r"china\.jpg alone: scikit-image is not installed"):
        assert list(pairs.shipped_photos(test=False)) == ["china.jpg"]
    astronaut = {"astronaut": np.zeros((4, 5, 3), np.uint8)}
    monkeypatch.setattr(pairs, "_skimage_photos", lambda include_test: astronaut)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # with scikit-image's photographs: no warning
        assert list(pairs.shipped_photos(test=False)) == ["china.jpg", "astronaut"]
        assert list(pairs.shipped_photos(test=True)) == ["flower.jpg"]


@pytest.mark.slow  # a run, its evaluation on the two test photographs at full size
def test_photo_sr_trains_translates_colour_and_is_measured_on_the_luminance(tmp_path):
    import json

    import torch.nn.functional as F

    from ganforge.data.pairs import shipped_photos
    from ganforge.metrics.image import luma, psnr, to_unit

    run = tmp_path / "psr"
    _train("photo-sr", run, 3)
    assert main(["eval", str(run)]) == 0
    result = json.loads((run / "eval.json").read_text())
    flower = result["per_photo"]["flower.jpg"]
    assert set(flower) == {"gan", "bicubic", "identity", "truth"}
    rgb = shipped_photos(test=True)["flower.jpg"]  # 427 x 640: cropped to 424 x 640
    hr = rgb[None, :, :424, :] * 2 - 1
    bicubic = F.interpolate(F.avg_pool2d(hr, 4), scale_factor=4, mode="bicubic").clamp(-1, 1)
    want = psnr(luma(to_unit(bicubic), 4), luma(to_unit(hr), 4))
    assert flower["bicubic"]["psnr"] == pytest.approx(float(want), abs=1e-4)
    assert flower["truth"]["psnr"] == pytest.approx(100.0)
    src, out = tmp_path / "small.npy", tmp_path / "big.npy"
    np.save(src, np.zeros((1, 1, 5, 6), dtype=np.float32))  # gray in: RGB out
    assert main(["translate", str(run), "--input", str(src), "--out", str(out)]) == 0
    assert np.load(out).shape == (1, 3, 20, 24)


def test_photo_sr_refuses_the_digit_feature_loss_and_thicken_refuses_photos(capsys):
    assert main(["train", "--preset", "mnist-sr", "--data", "photos"]) == 2
    err = capsys.readouterr().err
    assert "app.feature: the feature loss uses the MNIST network" in err
    assert main(["train", "--preset", "mnist-thicken", "--data", "photos"]) == 2
    assert "app.task=thicken trains on the bundled digits" in capsys.readouterr().err


def test_a_ramp_up_without_the_average_is_refused_in_one_line(capsys):
    assert main(["train", "--preset", "mnist-sr", "stab.ema_rampup=0.2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "stab.ema_rampup shapes G's moving average: set stab.ema too" in err
    assert len(err.splitlines()) == 1
