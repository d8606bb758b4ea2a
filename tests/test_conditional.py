"""Conditional nets: label embedding joined to z and D's input, projection D, AC-GAN head."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import TINY
from ganforge import checkpoint, nets
from ganforge.config import ModelConfig
from ganforge.metrics.compare import class_figures
from ganforge.nets import conditional as cond
from ganforge.nets.conditional import sampling_labels
from ganforge.nets.dcgan import DCGANDiscriminator
from ganforge.plots import class_grid
from ganforge.train.step import GANStep, Switches

SMALL = {
    "mlp": {"latent_dim": 6, "g_hidden": (16,), "d_hidden": (12,), "embed_dim": 3},
    "dcgan": {"latent_dim": 6, "width": 4, "embed_dim": 3},
}


def _build(arch: str, mode: str, shape=(1, 28, 28), k: int = 4):
    cfg = ModelConfig(arch=arch, cond=mode, num_classes=k, **SMALL[arch])
    torch.manual_seed(0)
    return nets.build(cfg, shape)


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("mode", list(cond.CONDITIONING))
def test_shapes_for_every_conditioning(arch, mode):
    g, d = _build(arch, mode)
    assert g.latent_dim == 6 and g.num_classes == 4 and d.num_classes == 4
    y = torch.tensor([0, 1, 2, 3, 3])
    x = g(torch.randn(5, 6), y)
    assert x.shape == (5, 1, 28, 28) and x.abs().max() <= 1
    assert d(x, y).shape == (5, 1)
    logit, aux = cond.d_scores(d, x, y)
    assert_close = torch.testing.assert_close
    assert_close(logit, d(x, y))
    assert (aux is None) == (mode != "acgan")
    if aux is not None:
        assert aux.shape == (5, 4)


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_generator_is_the_base_net_on_z_joined_with_the_label_embedding(arch):
    g, _ = _build(arch, "concat")
    g.eval()
    z, y = torch.randn(3, 6), torch.tensor([2, 0, 2])
    by_hand = g.base(torch.cat([z, g.embed.weight[y]], dim=1))
    torch.testing.assert_close(g(z, y), by_hand)
    # the label changes the image: same z, two labels, two different pictures
    assert not torch.allclose(g(z[:1], y[:1]), g(z[:1], torch.tensor([1])))
    # no labels: the classes in turn; bound labels: those
    torch.testing.assert_close(g(z), g(z, torch.tensor([0, 1, 2])))
    cond.bind(torch.tensor([3]), g)
    torch.testing.assert_close(g(z), g(z, torch.tensor([3, 3, 3])))
    cond.bind(None, g)


def test_join_label_broadcasts_the_embedding_as_constant_maps():
    x = torch.arange(2 * 1 * 2 * 2, dtype=torch.float32).view(2, 1, 2, 2)
    e = torch.tensor([[5.0, -1.0], [7.0, 0.5]])
    joined = cond.join_label(x, e)
    assert joined.shape == (2, 3, 2, 2)
    torch.testing.assert_close(joined[:, :1], x)
    expected = np.broadcast_to(e.numpy()[:, :, None, None], (2, 2, 2, 2))
    np.testing.assert_array_equal(joined[:, 1:].numpy(), expected)
    flat = cond.join_label(torch.ones(2, 3), e)  # points: [N, D + E]
    np.testing.assert_array_equal(flat.numpy(), [[1, 1, 1, 5, -1], [1, 1, 1, 7, 0.5]])
    pixels = cond.join_label(x, e, flat=True)  # for a fully connected D: [N, C*H*W + E]
    np.testing.assert_array_equal(pixels.numpy(), [[0, 1, 2, 3, 5, -1], [4, 5, 6, 7, 7, 0.5]])


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_concat_discriminator_reads_label_maps_from_its_input(arch):
    _, d = _build(arch, "concat")
    first = next(m for m in d.base.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    # MLP: 784 pixels + 3 embedding entries; DCGAN: 1 channel + 3 label maps
    assert (first.in_features if arch == "mlp" else first.in_channels) == (
        787 if arch == "mlp" else 4
    )


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_projection_logit_is_psi_plus_inner_product(arch):
    """D(x, y) = w . phi + b + V_y . phi (Miyato & Koyama 2018), checked in numpy."""
    _, d = _build(arch, "projection")
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([1, 3, 0, 1])
    with torch.no_grad():
        phi = d.trunk(x).numpy().astype(np.float64)
        got = d(x, y).numpy()
    w = d.head.weight.detach().numpy().astype(np.float64)[0]
    b = float(d.head.bias.detach())
    v = d.embed.weight.detach().numpy().astype(np.float64)
    expected = phi @ w + b + (v[y.numpy()] * phi).sum(axis=1)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-5, atol=1e-5)
    # the feature size: MLP D's last hidden width; DCGAN: 2 * width channels on a 7 x 7 map
    assert phi.shape[1] == (12 if arch == "mlp" else 8 * 7 * 7)


def test_projection_trunk_is_the_unconditional_discriminator_minus_its_last_map():
    _, d = _build("dcgan", "projection")
    kinds = [type(m).__name__ for m in d.trunk]
    assert kinds[-1] == "Flatten" and "Conv2d" in kinds
    # the plain DCGAN D ends in Conv2d(ch, 1, 7) and Flatten; the trunk keeps all before those
    base = DCGANDiscriminator((1, 28, 28), 4)
    assert kinds[:-1] == [type(m).__name__ for m in base.net][:-2]


def test_acgan_logit_ignores_the_label_and_the_aux_loss_is_cross_entropy():
    _, d = _build("mlp", "acgan")
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(d(x, torch.tensor([0, 1, 2])), d(x, torch.tensor([3, 3, 3])))
    logit, aux = d.scores(x)
    torch.testing.assert_close(logit, d(x))
    y = torch.tensor([2, 0, 3])
    a = aux.detach().numpy().astype(np.float64)
    log_softmax = a - np.log(np.exp(a).sum(axis=1, keepdims=True))
    expected = -np.mean(log_softmax[np.arange(3), y.numpy()])
    assert math.isclose(float(cond.acgan_loss(aux, y).detach()), expected, rel_tol=1e-5)


def test_unconditional_build_is_unchanged_and_flags():
    g, d = nets.build(ModelConfig(latent_dim=4, g_hidden=(8,), d_hidden=(8,)), (1, 28, 28))
    assert not cond.is_conditional(g) and not cond.is_conditional(d)
    g, d = _build("mlp", "concat")
    assert cond.is_conditional(g) and cond.is_conditional(d)


# --- the label path through training and sampling ------------------------------------------


# every switch off, and stabilisers on (R1, two G updates per step)
PATHS = {"plain": {}, "tricks": {"r1": 1.0, "g_steps": 2}}


@pytest.mark.parametrize("path", list(PATHS))
def test_step_draws_fakes_with_the_labels_of_each_real_batch(path):
    from ganforge.losses import LOSSES

    g, d = _build("mlp", "projection")
    opt_g = torch.optim.Adam(g.parameters())
    opt_d = torch.optim.Adam(d.parameters())
    step = GANStep(g, d, opt_g, opt_d, LOSSES["ns"], 6, Switches(**PATHS[path]))
    seen_g, seen_d = [], []
    g.register_forward_pre_hook(lambda m, args: seen_g.append(m.labels(None, len(args[0]))))
    d.register_forward_pre_hook(lambda m, args: seen_d.append(m.labels(None, len(args[0]))))
    reals = [torch.zeros(3, 1, 28, 28), torch.zeros(3, 1, 28, 28)]
    labels = [torch.tensor([0, 1, 2]), torch.tensor([3, 3, 1])]
    step(reals, labels=labels)
    # one G forward per D update, each with its real batch's labels; the tricks path's second
    # G update draws fresh fakes with the last batch's labels
    want = [[0, 1, 2], [3, 3, 1]] + ([[3, 3, 1]] if path == "tricks" else [])
    assert [s.tolist() for s in seen_g] == want
    # D: real and fake in one pass (labels twice), then the G update(s) on fakes
    assert [s.tolist() for s in seen_d][:2] == [[0, 1, 2] * 2, [3, 3, 1] * 2]
    assert [s.tolist() for s in seen_d][2:] == [[3, 3, 1]] * (len(want) - 1)
    # between steps nothing stays bound: G draws every class in turn
    assert g.bound is None and d.bound is None


@pytest.mark.parametrize("path", list(PATHS))
def test_acgan_step_adds_the_classifier_loss(path):
    """D's classifier head moves by -lr * d/dW [CE(c(phi(x)), y) + CE(c(phi(G(z, y))), y)],
    checked against a numpy softmax; with aux_weight = 0 it does not move at all."""
    from ganforge.losses import LOSSES

    x = torch.randn(8, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 3] * 2)
    lr = 0.1
    after = []
    for w in (0.0, 1.0):
        g, d = _build("mlp", "acgan")
        opt_g, opt_d = torch.optim.SGD(g.parameters(), lr), torch.optim.SGD(d.parameters(), lr)
        torch.manual_seed(1)
        switches = Switches(**PATHS[path], aux_weight=w)
        GANStep(g, d, opt_g, opt_d, LOSSES["ns"], 6, switches)([x], labels=[y])
        after.append(d.classifier.weight.detach().clone())
    g0, d0 = _build("mlp", "acgan")
    assert torch.equal(after[0], d0.classifier.weight)
    # by hand: the fakes of the step (z from seed 1), features of both, softmax gradients
    torch.manual_seed(1)
    with torch.no_grad():
        fake = g0(torch.randn(8, 6), y)
        grad = np.zeros(tuple(d0.classifier.weight.shape))
        for batch in (x, fake):
            h = d0.trunk(batch).double().numpy()  # [N, F]
            logits = h @ d0.classifier.weight.double().numpy().T + d0.classifier.bias.numpy()
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            p[np.arange(8), y.numpy()] -= 1.0  # d CE / d logits = softmax - onehot
            grad += p.T @ h / 8
    want = d0.classifier.weight.double() - lr * torch.from_numpy(grad)
    torch.testing.assert_close(after[1].double(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(want, after[1].double(), rtol=1e-5, atol=1e-6)


def test_conditional_model_refuses_switches_that_rebuild_d(cli, tmp_path):
    for key in ("model.minibatch_discrimination=4", "stab.feature_matching=1"):
        code, _, err = cli("train", "--preset", "mnist-cgan", "--out", tmp_path / "r", key, *TINY)
        assert code == 2 and "conditional model" in err and key.split("=")[0] in err
        assert len(err.strip().splitlines()) == 1


def test_class_grid_puts_one_class_per_row():
    x = torch.arange(5.0).view(5, 1, 1, 1)
    y = torch.tensor([1, 0, 1, 2, 1])
    cells, m = class_grid(x, y, 3)
    assert m == 3
    # row 0: sample 1, blank, blank; row 1: samples 0, 2, 4; row 2: sample 3, blank, blank
    assert cells.flatten().tolist() == [1, 0, 0, 0, 2, 4, 3, 0, 0]
    g, _ = _build("mlp", "concat")
    assert sampling_labels(g, 6).tolist() == [0, 1, 2, 3, 0, 1]
    assert sampling_labels(g, 3, label=2).tolist() == [2, 2, 2]


def test_conditional_run_end_to_end(cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli(
        "train",
        "--out",
        run,
        "--steps",
        "10",
        "--quiet",
        *TINY,
        "model.cond=concat",
        "train.n_samples=20",
    )
    assert code == 0, err
    code, out, _ = cli("sample", run, "--n", "12", "--label", "7", "--out", tmp_path / "s7.npy")
    assert code == 0 and "of class 7" in out
    assert np.load(tmp_path / "s7.npy").shape == (12, 1, 28, 28)
    # the same z with label 7 gives what G(z, 7) gives by hand
    from ganforge.runs import load_generator

    g = load_generator(run)
    z = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        by_hand = g(z, torch.full((12,), 7))
    np.testing.assert_allclose(np.load(tmp_path / "s7.npy"), by_hand.numpy(), atol=1e-6)
    code, _, err = cli("sample", run, "--label", "10", "--out", tmp_path / "x.png")
    assert code == 1 and "0..9" in err
    # a grid with one row per class: 10 rows of 2 samples of 28 pixels, 2-pixel gaps, x2
    from PIL import Image

    assert cli("sample", run, "--n", "20", "--out", tmp_path / "g.png")[0] == 0
    assert Image.open(tmp_path / "g.png").size == (2 * (2 * 30 + 2), 2 * (10 * 30 + 2))
    tensors, _ = checkpoint.read(sorted((run / "checkpoints").glob("*"))[-1])
    assert "G.embed.weight" in tensors and "D.embed.weight" in tensors


def test_unlabelled_data_is_refused_for_a_conditional_run(cli, tmp_path):
    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(64, 2)).astype("f4"))
    code, _, err = cli(
        "train",
        "--data",
        tmp_path / "pts.npy",
        "--out",
        tmp_path / "r",
        "--steps",
        "2",
        "model.cond=concat",
        "model.g_out=linear",
        "train.batch_size=8",
    )
    assert code == 2 and "labelled data" in err


class _SaysThree(nn.Module):
    """A stand-in classifier: features = 8 pixel means, logits always favour class 3."""

    def forward(self, x):
        f = torch.nn.functional.adaptive_avg_pool2d(x, (2, 4)).flatten(1)  # [N, 8]
        logits = torch.zeros(len(x), 10)
        logits[:, 3] = 5.0
        return f, logits


def test_per_class_evaluation_reads_the_classifier_per_requested_label(cli, tmp_path):
    from ganforge.data import load_dataset
    from ganforge.errors import GanforgeError
    from ganforge.evaluation import evaluate_classes

    run = tmp_path / "run"
    assert cli("train", "--out", run, "--steps", "4", "--quiet", *TINY, "model.cond=acgan")[0] == 0
    data = load_dataset("mnist5k", limit=256)  # the run's training data (TINY)
    x, y = data.batch(torch.arange(len(data))), data.y
    out = evaluate_classes(run, x, y, n_per_class=20, features=_SaysThree())
    acc = [r["accuracy"] for r in out["classes"]]
    assert acc == [0.0, 0.0, 0.0, 1.0] + [0.0] * 6  # only the samples asked to be 3 pass
    assert out["accuracy"] == pytest.approx(0.1)
    assert all(
        0 <= r["recall"] <= 1 and r["fid"] >= 0 and r["fid_floor"] >= 0 for r in out["classes"]
    )
    with pytest.raises(GanforgeError, match="too few"):
        evaluate_classes(run, x[:30], y[:30], n_per_class=20, features=_SaysThree())

    # `ganforge eval` adds the per-class figures of a conditional run, in its table and in
    # eval.json: the same figures as evaluate_classes on the same shuffled real images
    net = tmp_path / "says3.pt"
    torch.jit.script(_SaysThree()).save(str(net))
    code, out_text, _ = cli("eval", run, "--n", "100", "--bootstrap", "2", "--features", net)
    assert code == 0 and "per class: samples asked for each label" in out_text
    ev = json.loads((run / "eval.json").read_text())
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    scripted = torch.jit.load(str(net))
    want = evaluate_classes(run, data.batch(perm), data.y[perm], n_per_class=10, features=scripted)
    assert ev["per_class"] == want
    assert [r["accuracy"] for r in ev["per_class"]["classes"]] == [0.0] * 3 + [1.0] + [0.0] * 6
    # ... and the report shows them
    assert cli("report", run)[0] == 0
    text = (run / "report.html").read_text()
    assert "<h2>Per class</h2>" in text
    assert f"<tr><td>fid</td><td>{ev['metrics']['fid']['value']:.4g}</td>" in text  # nested
    r3 = ev["per_class"]["classes"][3]
    assert f"<tr><td>3</td><td>1</td><td>{r3['recall']:.4g}</td>" in text
    assert out["min_recall"] == min(r["recall"] for r in out["classes"])
    plain = tmp_path / "plain"
    assert cli("train", "--out", plain, "--steps", "2", "--quiet", *TINY)[0] == 0
    with pytest.raises(GanforgeError, match="not a conditional run"):
        evaluate_classes(plain, x, y, n_per_class=20, features=_SaysThree())


def test_class_figures_against_numpy():
    """Accuracy, k = 3 precision and recall, and FID of one class, by brute force in numpy."""
    from scipy.linalg import sqrtm
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(0)
    real = rng.normal(size=(12, 2))
    fake = np.concatenate([rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + 4.0])
    said = np.array([2, 2, 0, 2, 1, 2, 2, 0, 0, 0, 0, 0])  # classifier's argmax: 5 of 12 say 2
    probs = np.eye(3)[said] * 0.8 + 0.1
    out = class_figures(2, torch.tensor(real), torch.tensor(fake), torch.tensor(probs))

    def radii(a):  # distance to the 3rd nearest neighbour, itself excluded
        return np.sort(cdist(a, a), axis=1)[:, 3]

    precision = np.mean([(cdist(f[None], real)[0] <= radii(real)).any() for f in fake])
    recall = np.mean([(cdist(r[None], fake)[0] <= radii(fake)).any() for r in real])

    def fid(a, b):
        ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        root = sqrtm(ca @ cb).real
        return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * root))

    want = {
        "label": 2,
        "accuracy": 5 / 12,
        "recall": recall,
        "precision": precision,
        "fid": fid(real, fake),
        "fid_floor": fid(real[:6], real[6:]),
    }
    assert 0 < recall < 1 and 0 < precision < 1  # the example separates the two
    assert out.keys() == want.keys()
    for key in want:
        assert out[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), key
        assert want[key] == pytest.approx(out[key], rel=1e-6, abs=1e-9), key
    assert class_figures(2, torch.tensor(real), torch.tensor(fake), None)["accuracy"] is None
