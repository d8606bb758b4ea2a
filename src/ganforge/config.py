"""Typed configuration: nested dataclasses, named presets, TOML files and dotted overrides.

Every field has a default and a one-line comment. A value from a preset, a TOML file or the
command line (``train.lr_d=1e-4``, or the bare leaf ``lr_d=1e-4`` when it is unambiguous) is
parsed to the field's type and validated; a mistake raises ``ConfigError`` with one line naming
the key. The resolved config is saved as ``config.json`` beside the run's weights.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass
class ModelConfig:
    arch: str = "mlp"  # network family: "mlp" (the course's model), "dcgan" or "progressive"
    latent_dim: int = 100  # size of z ~ N(0, I)
    g_hidden: tuple[int, ...] = (128, 256, 512)  # mlp: G's hidden widths
    d_hidden: tuple[int, ...] = (512, 256)  # mlp: D's hidden widths
    leak: float = 0.2  # LeakyReLU negative slope
    g_batchnorm: bool = True  # mlp: BatchNorm1d after each hidden activation of G
    bn_momentum: float = 0.2  # PyTorch convention; 0.2 is Keras' momentum=0.8 (see nets/mlp.py)
    width: int = 64  # dcgan: channels of D's first and G's last hidden layer
    d_batchnorm: bool = False  # dcgan, progressive: BatchNorm in D's convolutions (not the first)
    d_fc: int = 0  # dcgan: a hidden Linear layer of this width before D's logit; 0 = none
    g_fc: int = 0  # dcgan: a hidden layer of this width on z before G's first map; 0 = none
    g_out: str = "tanh"  # G's output: "tanh" for images in [-1, 1], "linear" for points
    cond: str = "none"  # label conditioning: none, concat, projection, acgan (nets/conditional.py)
    num_classes: int = 10  # conditional: number of classes (labels 0 .. num_classes - 1)
    embed_dim: int = 10  # conditional: size of the label embedding joined to z (and D's input)
    spectral_norm: bool = False  # D's weights divided by their largest singular value (Miyato 2018)
    d_dropout: float = 0.0  # dropout probability after each hidden activation of D; 0 = off
    minibatch_discrimination: int = 0  # B kernels of Salimans' minibatch layer in D; 0 = off
    minibatch_kernel_dim: int = 5  # C, the size of each minibatch-discrimination kernel
    minibatch_stddev: bool = False  # append the batch's mean feature std to D's features (Karras)
    virtual_batch_norm: bool = False  # G's BatchNorm from a fixed reference batch (Salimans 2016)
    standardize: bool = False  # points: G and D see the data standardised, G's samples mapped back
    pack: int = 1  # D judges packs of this many samples, all real or all fake (PacGAN); 1 = off


@dataclass
class DataConfig:
    source: str = "mnist5k"  # mnist5k (bundled), mnist, fashion-mnist, cifar10, folder, .npy/.npz
    image_size: int = 0  # resize images to this square size (28 -> 32 pads); 0 keeps the data's
    channels: int = 0  # 1 grayscale or 3 RGB; 0 keeps the data's
    download: bool = False  # fetch a named data set from its usual mirrors if it is missing
    root: str = ""  # folder of named data sets; "" means $GANFORGE_DATA or ~/.cache/ganforge
    limit: int = 0  # train on this many samples only; 0 means all
    skip_bad: bool = True  # skip unreadable images (counted in a warning) instead of stopping


@dataclass
class OptimConfig:
    lr_g: float = 2e-4  # Adam learning rate of G
    lr_d: float = 2e-4  # Adam learning rate of D
    betas_g: tuple[float, float] = (0.5, 0.999)  # Adam betas of G (beta1 = 0.5: Radford et al.)
    betas_d: tuple[float, float] = (0.5, 0.999)  # Adam betas of D
    decay_from: float = 1.0  # both rates fall linearly to ~0 from this share of the run; 1: off


@dataclass
class TrainConfig:
    loss: str = "ns"  # adversarial objective, a name in ganforge.losses.LOSSES
    steps: int = 12_000  # generator updates
    seconds: float = 0.0  # a wall-clock budget: the run ends once it has trained this long; 0: off
    batch_size: int = 64  # real samples per D update, fake samples per update
    d_steps: int = 1  # k: D updates per G update (Goodfellow et al. 2014, Algorithm 1)
    d_update: str = "joint"  # joint: one D step on reals and fakes; split: one each (Keras seeds)
    g_steps: int = 1  # G updates per step, after the k D updates
    seed: int = 0  # seeds weights, noise and data order
    device: str = "auto"  # auto (cuda when available), cpu, cuda (the local rank's GPU), cuda:N
    precision: str = "fp32"  # fp32, tf32 (CUDA matmuls), bf16 or fp16 autocast (fp16 loss-scaled)
    channels_last: bool = True  # convolutional models: NHWC memory layout (CPU and CUDA)
    cudnn_benchmark: bool = True  # CUDA: time the convolution algorithms once, keep the fastest
    compile: bool = False  # torch.compile G and D (slower than eager on CPU for these models)
    sync_bn: bool = True  # under torchrun on GPU: SyncBatchNorm, batch statistics of all ranks
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    log_every: int = 100  # steps between lines of metrics.jsonl
    sample_every: int = 1000  # steps between sample grids from the fixed z
    n_samples: int = 64  # samples in each grid
    ckpt_every: int = 2000  # steps between checkpoints (one is always written at the end)
    ckpt_seconds: float = 60.0  # also checkpoint at a log step this long after the last; 0: off
    keep_ckpts: int = 2  # checkpoints kept on disk, newest first
    snapshot_every: int = 0  # steps between G/D weight snapshots (for `ganforge theory`); 0: none
    tensorboard: bool = False  # also write TensorBoard events to the run folder
    aux_weight: float = 1.0  # model.cond=acgan: weight of the auxiliary classifier's loss
    stage_steps: int = 1000  # model.arch=progressive: steps at each resolution, fully faded in
    fade_steps: int = 1000  # model.arch=progressive: steps fading each new resolution in
    stage_batch: tuple[int, ...] = ()  # model.arch=progressive: batch per stage, 4 x 4 first
    eval_every: int = 0  # steps between FIDs logged to metrics.jsonl (best kept); 0: never
    eval_n: int = 1000  # samples behind each eval_every FID
    on_nonfinite: str = "stop"  # on a NaN/inf loss or weight: "stop", or "rollback" and retry
    max_rollbacks: int = 3  # rollbacks allowed in one run before it stops
    sample_filter: str = "none"  # ganforge sample: none, drs (Azadi 2019) or rejection (by D)
    filter_steps: int = 0  # points: steps fitting the filter's own D on the final G; 0: run's D
    filter_nets: int = 1  # points: that many D's fitted apart (seeds), their logits averaged
    filter_quantile: float = 0.99995  # rejection: D~_M, this quantile of the burn-in's logits


@dataclass
class StabConfig:
    gp: float = 0.0  # gradient penalty lambda (Gulrajani 2017), any loss; 0 = off (wgan-gp: 10)
    r1: float = 0.0  # gamma of the R1 penalty gamma/2 E||grad D(x)||^2 on reals (Mescheder 2018)
    r2: float = 0.0  # gamma of the R2 penalty gamma/2 E||grad D(G(z))||^2 on fakes (Mescheder 2018)
    reg_every: int = 1  # R1 and R2 on every N-th step only, weighted N times (lazy, StyleGAN2)
    drift: float = 0.0  # weight of E[D(x)^2] in D's loss, keeping a critic near 0 (Karras 2018)
    clip: float = 0.01  # loss=wgan: D's weights clipped to [-clip, clip] after each D update
    label_smoothing: bool = False  # one-sided label smoothing: real targets smooth_real, fake 0
    smooth_real: float = 0.9  # the real target alpha of label smoothing (Salimans 2016)
    instance_noise: float = 0.0  # std of Gaussian noise added to D's inputs at step 0; 0 = off
    noise_steps: int = 0  # steps over which that std falls linearly to 0; 0 means train.steps
    feature_matching: float = 0.0  # weight of ||E f(x) - E f(G(z))||^2 in G's loss; 0 = off
    historical_averaging: float = 0.0  # weight of ||theta - mean of past theta||^2, G and D
    augment: str = ""  # images: D's inputs augmented alike (DiffAugment): translation,cutout
    ema: float = 0.0  # beta of the moving average of G's weights, used for samples; 0 = off
    ema_rampup: float = 0.0  # the average's half-life at most this x the steps taken; 0 = off


@dataclass
class DiagnoseConfig:
    enabled: bool = True  # watch the measurements while training and warn in words
    window: int = 5  # log lines a symptom must last to warn; unseen for 2 windows, it has ended
    d_strong_loss: float = 0.1  # D too strong: mean L_D over the window below this ...
    d_strong_fake: float = 0.05  # ... and mean D(G(z)) below this
    g_grad_vanish: float = 1e-3  # G's gradient norm below this is called vanished
    fooled_prob: float = 0.9  # G too strong: mean D(x) and D(G(z)) both above this, or ...
    fooled_loss: float = 1.6  # ... L_D above this all window (chance: log 4 = 1.386) and rising
    collapse_ratio: float = 0.5  # mode collapse: fixed-z samples spread < this x the real data
    collapse_checks: int = 2  # ... at this many sample grids in a row
    osc_growth: float = 2.0  # oscillation: a loss's swing grows by this factor in one window
    osc_min: float = 0.3  # ... to more than this (standard deviation about its trend)
    report: bool = True  # write report.html into the run folder at the end of training


@dataclass
class AppConfig:
    task: str = "none"  # image-to-image: none (a GAN from noise), sr, colorize, thicken (apps/)
    scale: int = 4  # sr: upscaling factor, 2 or 4; the input is the scale x scale average pool
    content: float = 100.0  # weight of the L1 content loss of paired tasks (pix2pix: 100)
    adv: float = 1.0  # weight of the adversarial loss in G's; 0 trains the plain L1 model (no D)
    feature: float = 0.0  # sr: weight of the L1 distance of the shipped MNIST net's features
    cycle: float = 10.0  # thicken: weight of the cycle loss |G_BA(G_AB(a)) - a| (Zhu 2017)
    identity: float = 0.5  # thicken: identity loss weight as a share of app.cycle's
    pool: int = 50  # thicken: past fakes each D also sees (Shrivastava 2017); 0 = newest only
    blocks: int = 4  # residual blocks of G (sr, thicken)
    patch: int = 32  # colorize: side of the square training patches (a multiple of 8)
    holdout: int = 500  # sr: bundled digits kept out of training, the eval's fallback test set


@dataclass
class Config:
    preset: str = "mnist-mlp"  # the preset this config started from
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stab: StabConfig = field(default_factory=StabConfig)
    diagnose: DiagnoseConfig = field(default_factory=DiagnoseConfig)
    app: AppConfig = field(default_factory=AppConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Preset:
    about: str
    values: Mapping[str, Any]


# Toy worlds: points in R^D, so a linear output layer; small nets without BatchNorm.
_TOY_MLP: dict[str, Any] = {
    "model.latent_dim": 16,
    "model.g_hidden": (128, 128),
    "model.d_hidden": (128, 128),
    "model.g_batchnorm": False,
    "model.g_out": "linear",
    "optim.lr_g": 1e-3,
    "optim.lr_d": 1e-3,
    "train.batch_size": 256,
    "train.log_every": 50,
    "train.sample_every": 500,
    "train.n_samples": 1000,
    "train.ckpt_every": 1000,
    "train.threads": 1,  # nets this small run faster on one thread than on two
}

# The DCGAN on 28 x 28 MNIST: digits with BatchNorm in D, strokes without.
_DCGAN_28: dict[str, Any] = {
    "model.arch": "dcgan",
    "model.width": 32,
    "model.d_batchnorm": True,
    "model.bn_momentum": 0.1,
    "data.image_size": 28,
    "train.steps": 2500,
    "train.sample_every": 500,
    "train.ckpt_every": 1000,
    "train.log_every": 50,
}

# Short CPU runs: G's moving average, its half-life growing with the run (docs/evaluation.md,
# "Screening": at 150 s on one core it halved the MLP's FID, 79 -> 39, at lr 5e-4).
_EMA_SHORT: dict[str, Any] = {"stab.ema": 0.999, "stab.ema_rampup": 0.2}

# points2d: one recipe for any 2-D points (docs/toy.md, "Every mode, sharply"). Packing spreads
# G over the modes; the sampling filter, with a D fitted on the final G, takes away the samples
# that a continuous G must leave between them. Plain, these nets cover 4 of 25 modes.
_POINTS2D: dict[str, Any] = {
    **_TOY_MLP,
    "data.source": "ring8",
    "model.standardize": True,  # any scale of points: the nets see them standardised
    "model.pack": 4,  # PacGAN4 (Lin et al. 2018)
    "model.d_hidden": (256, 256),  # a packing D judges 4 points at once: a wider one
    "stab.ema": 0.999,  # samples from the moving average of G: tighter around the modes
    "optim.decay_from": 0.5,  # rates constant for half the run, then falling to 0
    "train.steps": 20_000,
    "train.threads": 0,  # torch's default: both cores (16 % faster than one at these widths)
    "train.sample_every": 2000,  # a scatter of 1,000 samples takes 0.5 s to draw
    "train.snapshot_every": 2000,
    "train.filter_steps": 4000,  # the filter's D, fitted on the final G (averaged weights)
    "train.sample_filter": "rejection",  # ganforge sample: rejection by that D's density ratio
}

# Image-to-image tasks (apps/, docs/applications.md): small nets, short runs, no diagnosis of
# a GAN from noise (its rules read D(x) and D(G(z)) of one G).
_APP: dict[str, Any] = {
    "train.log_every": 50,
    "train.ckpt_every": 500,
    "train.n_samples": 16,
    "optim.decay_from": 0.5,  # pix2pix: constant rates, then a linear decay to 0
    "diagnose.enabled": False,
}

# The course's MLP, fast (stacked-best's recipe; mnist-best's before RpGAN)
_MLP_FAST: dict[str, Any] = {
    # screened at 150 s on one core (docs/evaluation.md): lr 2e-4 -> 5e-4 and the average
    # each halved FID; 1e-3, lr decay, D at 2x G's rate, batch 32 or 128: worse
    **_EMA_SHORT,
    "optim.lr_g": 5e-4,
    "optim.lr_d": 5e-4,
    # at 5 minutes, seed 1: FID 29.5 -> 24.8, class KL 0.024 -> 0.010 (Karras 2018)
    "model.minibatch_stddev": True,
    "train.steps": 6500,  # the stddev layer costs ~7 % a step: 5 minutes with margin
    "train.threads": 1,  # batch-64 MLPs: two threads take as long a step as one
    "train.sample_every": 1000,
}

# The course's MLP with RpGAN (stacked-best's recipe; mnist-best's until the convolutional one
# below won at equal time: docs/evaluation.md, "mnist-best")
_MLP_RPGAN: dict[str, Any] = {
    **_MLP_FAST,
    # RpGAN + R1 + R2 with Adam beta1 = 0 (Huang et al. 2024), screened on seed 0
    # (docs/evaluation.md): at 6,500 steps FID 22.9 (ns) -> 18.8; it goes on improving where
    # the ns loss drifts, so the run trains for its 5 minutes: 27.4 (ns) -> 9.5
    "train.loss": "rpgan",
    "stab.r1": 2.0,  # gamma 1: 11.4, 4: 11.7 at 5 minutes
    "stab.r2": 2.0,
    "stab.reg_every": 8,  # lazy: the double backward pass on one step in 8
    "optim.betas_g": (0.0, 0.99),
    "optim.betas_d": (0.0, 0.99),
    "train.seconds": 285.0,  # on the clock: 5 minutes for the whole command
    "train.steps": 1_000_000,  # a cap the clock reaches first
}

# mnist-dcgan's recipe, which mnist-dcgan-cond shares (docs/evaluation.md, "mnist-dcgan")
_DCGAN_RECIPE: dict[str, Any] = {
    **_DCGAN_28,
    # screened on one core (docs/evaluation.md, "mnist-dcgan"), 3,300 steps: FID 136
    # (lr 2e-4) -> 77 (lr 2e-3) -> 64 (d_fc 256) -> 42 (D's rate 2.5e-4); 5,000 steps:
    # 52 -> 38 (dropout 0.3 in D: a D that no longer memorises the 5,000 digits)
    **_EMA_SHORT,
    "model.d_fc": 256,  # D's verdict on the whole map, not a sum of patch scores
    "optim.lr_g": 2e-3,
    "optim.lr_d": 2.5e-4,
    # RpGAN + R1 + R2 with Adam beta1 = 0 (mnist-best's loss; docs/evaluation.md, "mnist-dcgan",
    # seed 0 on one thread for 285 s): FID 24.2 with dropout 0.3 in D (which held D back before
    # the penalties did), 14.0 without it (37 % more steps); no BatchNorm in D: 64.3; both
    # rates 1e-3: 18.8; D's 5e-4: 13.2; gamma 1: 14.1
    "train.loss": "rpgan",
    "stab.r1": 2.0,
    "stab.r2": 2.0,
    "stab.reg_every": 8,
    "optim.betas_g": (0.0, 0.99),
    "optim.betas_d": (0.0, 0.99),
    "train.seconds": 285.0,  # on the clock: 5 minutes for the whole command
    "train.steps": 1_000_000,  # a cap the clock reaches first
    "train.threads": 0,  # convolutions: two threads take 0.6x one's time a step
}

# mnist-dcgan and mnist-best: the recipe at width 24 with D's rate 5e-4 (docs/evaluation.md,
# "mnist-dcgan", one thread for 285 s, seed 0: width 32 13.2, 24 11.7, 16 12.7, 48 24.0; three
# seeds on both cores: 11.5-11.9 -> 9.8-11.3, the MLP's recipe 9.9-13)
_IMAGE_BEST: dict[str, Any] = {**_DCGAN_RECIPE, "model.width": 24, "optim.lr_d": 5e-4}

PRESETS: dict[str, Preset] = {
    "mnist-mlp": Preset(
        "the course's MLP GAN on the bundled 5k MNIST images (default; ~3 min on 2 cores; FID 38 "
        "to 52, 2 benches of 3 seeds)",
        {},
    ),
    "mnist-best": Preset(
        "the best MNIST G ganforge trains in 5 minutes: mnist-dcgan, the convolutional nets "
        "with RpGAN + R1 + R2, Adam beta1 0 and G's moving average, on the clock for 285 s (~5 "
        "min on 2 cores, train.seconds; FID 9.8 to 12.1, 4.3 to 7.0x lower than the course's "
        "loop at equal time, recall 0.86 to 0.88, 4 benches of 3 seeds; docs/evaluation.md)",
        _IMAGE_BEST,
    ),
    "stacked-best": Preset(
        "Stacked MNIST (1,000 modes) in 10 minutes on one core: the course's MLP with RpGAN + "
        "R1 + R2, Adam beta1 0, G's moving average and minibatch stddev in D, on the clock for "
        "585 s (~10 min on one core; 1,000 of 1,000 modes in 26,000 samples, KL 0.062 to 0.079 "
        "to uniform, 3 seeds; 972 to 987 in 5,000, 2 benches; docs/evaluation.md)",
        # the former recipe (_MLP_FAST, 7,500 steps): KL 0.17 to uniform; RpGAN: 0.066 (seed 0)
        {**_MLP_RPGAN, "data.source": "stacked-mnist", "train.seconds": 585.0},
    ),
    "mnist-dcgan": Preset(
        "DCGAN-style convolutional G and D on the bundled 5k MNIST images, 28 x 28, width 24, "
        "a hidden layer in D, G's rate 4x D's, RpGAN + R1 + R2, Adam beta1 0, G's moving "
        "average, on the clock for 285 s (~5 min on 2 cores; FID 9.8 to 12.1, 4.3 to 7.0x "
        "lower than the course's loop at equal time, recall 0.86 to 0.88, 4 benches of 3 seeds; "
        "docs/evaluation.md)",
        _IMAGE_BEST,
    ),
    "mnist-cgan": Preset(
        "conditional MLP GAN (label embedding joined to z, projection D with spectral norm, "
        "EMA of G) on the bundled 5k MNIST images (~4 min on 2 cores; FID 14 to 18, the asked "
        "digit in 96 to 98 % of samples, 2 benches of 3 seeds)",
        {
            # measured (docs/conditional.md): with concat and no EMA the samples obey the
            # label 88 % of the time and barely vary within a class (recall ~0.01); each
            # change below raised the lowest class's recall, to 0.60 with all of them
            "model.cond": "projection",
            "stab.ema": 0.999,
            "model.spectral_norm": True,
            "optim.lr_g": 1e-4,  # two time-scale rates, D 4x G's (Heusel et al. 2017)
            "optim.lr_d": 4e-4,
            "train.n_samples": 80,
        },
    ),
    "mnist-dcgan-cond": Preset(
        "conditional DCGAN: mnist-dcgan's recipe at width 32 (D's rate 2.5e-4) with a "
        "projection discriminator, on the bundled 5k MNIST (~5 min on 2 cores, on the clock; "
        "FID 10.0 to 12.4, the asked digit in 98 % of samples, every class's recall 0.73 or "
        "more, 2 benches of 3 seeds; docs/conditional.md)",
        {
            # mnist-dcgan's hidden layer, dropout and rates (docs/conditional.md, 3 seeds): FID
            # 34 -> 14, the lowest class's recall 0.32 -> 0.68, label accuracy 0.965 -> 0.98;
            # then its RpGAN + R1 + R2 without dropout: FID 14 -> 11.6, lowest recall 0.77
            # (measured at width 32, D's rate 2.5e-4: mnist-dcgan's before width 24)
            **_DCGAN_RECIPE,  # BatchNorm in D: without it (and EMA) 84 % label accuracy
            "model.cond": "projection",
            "train.n_samples": 80,
        },
    ),
    "mnist-progressive": Preset(
        "progressive growing 4 -> 8 -> 16 -> 32 on the bundled 5k MNIST padded to 32 x 32, "
        "both rates 5e-3, on the clock for 575 s (~10 min on 2 cores; digits of every class, "
        "FID 10.3 to 14.3, recall 0.77 to 0.80, 2 benches of 3 seeds; docs/conditional.md)",
        {
            "model.arch": "progressive",
            "model.width": 8,
            "model.latent_dim": 64,
            "data.image_size": 32,
            # both rates 5e-3 (docs/conditional.md, 5,300 steps, seed 0): 1e-3 FID 79, 2e-3 40,
            # 3e-3 25, 5e-3 14 (seed 1: 15), 8e-3 16, 1.2e-2 14; D at 1/4 of G's rate: 325
            "optim.lr_g": 5e-3,
            "optim.lr_d": 5e-3,
            "optim.betas_g": (0.0, 0.99),  # Karras et al. 2018: beta1 = 0, beta2 = 0.99
            "optim.betas_d": (0.0, 0.99),
            "train.batch_size": 32,
            # Karras et al. fade reals with D's new block (nets/progressive.py); NS + R1 and
            # G's moving average as in their later code (StyleGAN). Screened on one core
            # (docs/conditional.md), at rates 1e-3: 400-step stages and fades, the 32 x 32
            # stage trained to the end: FID 141 -> 71; R1 every 16 steps (lazy), gamma 5 (0.2:
            # 257), 8,000 steps, a longer average: 46. RpGAN: no better (5,300 steps: 78 / 79)
            "train.loss": "ns",
            # RpGAN with R1 and R2 (gamma 5) and BatchNorm in D (model.d_batchnorm): FID 33.5
            # and 39.7 at 8,000 steps at rates 1e-3 (seeds 0, 1), but a step costs ~30 % more
            "stab.r1": 5.0,
            "stab.reg_every": 16,
            # G's average with its half-life at most 0.2x the steps taken (_EMA_SHORT): the
            # grids at the end of the early stages show digits, not the initial weights' noise
            # (at step 1,200 a plain 0.999 average still holds 30 % of them); the final G is
            # the same (seed 0, rates 1e-3: FID 45.80 either way)
            **_EMA_SHORT,
            "train.stage_steps": 400,
            "train.fade_steps": 400,
            # on the clock, as mnist-best: 10 minutes for the whole command on any machine
            # (5,950 to 6,400 steps on 2026-12-03 night; 8,000 took 585 s on a faster machine
            # a day before); the 32 x 32 stage, faded in by step 2,800, trains to the end
            "train.seconds": 575.0,
            "train.steps": 1_000_000,  # a cap the clock reaches first
            "train.threads": 0,  # convolutions: both cores
            "train.sample_every": 400,
            "train.ckpt_every": 400,
            "train.log_every": 50,
        },
    ),
    "toy-1d": Preset(
        "1-D two-Gaussian mixture, small MLPs, z of size 1, snapshots for `ganforge theory` "
        "(~1 min; JSD to the data 0.017)",
        {
            "data.source": "gmm1d:-2,2:0.5:0.3,0.7",
            **_TOY_MLP,
            "model.latent_dim": 1,  # x = G(z) is a curve: the z-to-x mapping can be drawn
            "model.g_hidden": (32, 32),
            "model.d_hidden": (64, 64),
            # D near D*, as the theory assumes: 3 D updates per G update and a slower G
            # (docs/toy.md: JSD at the end 0.017 against 0.105 with 32-32, k = 1, equal rates)
            "train.d_steps": 3,
            "optim.lr_g": 3e-4,
            "train.steps": 3000,
            "train.snapshot_every": 25,
        },
    ),
    "points2d": Preset(
        "any 2-D points or mixture (--data, default ring8): packing D, EMA, standardised data, "
        "samples filtered by rejection with a D fitted on the final G (~3 min on 2 cores; every "
        "mode of two unseen mixtures at 98.4 to 99.1 % high quality, 5 seeds, docs/toy.md)",
        _POINTS2D,
    ),
    "ring8": Preset(
        "points2d on 8 Gaussians on a circle (~3 min on 2 cores; 8 / 8 modes, 98.2 % high "
        "quality, 5 seeds)",
        _POINTS2D,
    ),
    "grid25": Preset(
        "points2d on 25 Gaussians on a 5 x 5 grid (~3 min on 2 cores; 25 / 25 modes, 97.7 % "
        "high quality, KL 0.009, 5 seeds)",
        {**_POINTS2D, "data.source": "grid25"},
    ),
    "mnist-sr": Preset(
        "super-resolution x4 (7 x 7 average pool -> 28 x 28): residual G with pixel shuffle, "
        "PatchGAN D, L1 + adversarial, on the bundled 5k MNIST (~3 min on one core; FID 6.1 "
        "to 6.5, 3x the real floor, 5.7 to 5.8 dB above bicubic, 3 seeds)",
        {
            **_APP,
            "app.task": "sr",
            # the shipped MNIST network's features (docs/applications.md: on the same 5,000
            # test digits, accuracy 0.935 -> 0.946, FID 46.3 -> 42.2; content 20: worse)
            "app.feature": 10.0,
            "model.width": 32,
            "optim.lr_g": 1e-3,  # at 2e-4 the L1 still fell steeply after 300 steps
            "train.batch_size": 16,
            # 1,000 -> 1,500 steps (docs/applications.md, seed 0): FID 9.8 -> 6.5, about
            # 290 s on one thread; feature 30 (8.7) and G's moving average (7.7): worse
            "train.steps": 1500,
            "train.threads": 1,
            "train.sample_every": 250,
        },
    ),
    "photo-sr": Preset(
        "super-resolution x4 of colour photographs (patches of those scikit-learn and "
        "scikit-image ship, or --data FOLDER): mnist-sr's nets in RGB, L1 + 0.1 x adversarial "
        "(~2.5 min on one core; 0.4 to 0.7 dB above bicubic on the test photographs, 3 seeds, "
        "with scikit-image's photographs: pip install 'ganforge[photos]')",
        {
            **_APP,
            "app.task": "sr",
            "data.source": "photos",
            "app.patch": 32,  # 8 x 8 inputs
            # seed 0 (docs/applications.md): adversarial weight 1 -> 0.1, PSNR 27.20 -> 28.34
            # dB (bicubic 27.80), less ringing
            "app.adv": 0.1,
            "model.width": 32,
            "optim.lr_g": 1e-3,
            "train.batch_size": 16,
            "train.steps": 1000,
            "train.threads": 1,
            "train.sample_every": 250,
        },
    ),
    "colorize": Preset(
        "colourisation L -> ab (pix2pix: U-Net G, PatchGAN D, L1 x 100) on patches of the "
        "photographs scikit-learn (and scikit-image) ship, or --data FOLDER (~2.5 min on one core; "
        "0.9 to 1.4 dB above grey, 68 to 88 % of the truth's colourfulness, 3 seeds, with "
        "scikit-image's photographs: pip install 'ganforge[photos]')",
        {
            **_APP,
            "app.task": "colorize",
            "data.source": "photos",
            "model.width": 32,
            "train.batch_size": 16,
            "train.steps": 1000,
            "train.sample_every": 250,
            "train.threads": 1,
        },
    ),
    "mnist-thicken": Preset(
        "style transfer thin <-> thick digits, unpaired (CycleGAN: two ResNet G, two PatchGAN "
        "D, LSGAN, cycle 2.5, identity 0.5 x cycle, pool of 50) on the bundled 5k MNIST (~2 min "
        "on one core; A -> B 18.9 to 19.3 dB against the true dilation, 3 seeds)",
        {
            **_APP,
            "app.task": "thicken",
            # CycleGAN's 10 keeps strokes thin: dilation loses what the way back needs
            # (docs/applications.md: A -> B PSNR 16.7, 18.0, 18.9 dB and ink ratio 0.84,
            # 0.88, 0.91 at cycle 10, 5, 2.5)
            "app.cycle": 2.5,
            "train.loss": "lsgan",
            "model.width": 8,
            "app.blocks": 2,
            "train.batch_size": 8,
            "train.steps": 800,
            "train.sample_every": 200,
            "train.threads": 1,
        },
    ),
}

SECTIONS = ("model", "data", "optim", "train", "stab", "diagnose", "app")

# The names a key may take. Config knows names only: each table of implementations lives with
# what it implements (``losses.LOSSES``, ``nets.ARCHS``, ``nets.conditional.CONDITIONING``,
# ``train.guard``'s actions) and is checked against its row here by tests/test_config.py.
LOSS_NAMES = ("ns", "minimax", "wgan", "wgan-gp", "hinge", "lsgan", "rpgan")
ARCH_NAMES = ("mlp", "dcgan", "progressive")
AUGMENT_NAMES = ("translation", "cutout")  # stab.augment (stabilizers.augment)
COND_NAMES = ("concat", "projection", "acgan")
APP_TASKS = ("sr", "colorize", "thicken")  # apps.TASKS
SAMPLE_FILTERS = ("drs", "rejection")  # nets.filters.FILTERS; "none" keeps every sample
NONFINITE_ACTIONS: dict[str, str] = {
    "stop": "stop with one line naming the step and the tensor; the last checkpoint is kept",
    "rollback": "reload the last good checkpoint, skip the failed batches, draw new noise",
}
CHOICES: dict[str, tuple[str, ...]] = {
    "train.loss": LOSS_NAMES,
    "model.arch": ARCH_NAMES,
    "model.cond": ("none", *COND_NAMES),
    "preset": tuple(PRESETS),
    "train.on_nonfinite": tuple(NONFINITE_ACTIONS),
    "train.sample_filter": ("none", *SAMPLE_FILTERS),
    "train.d_update": ("joint", "split"),
    "app.task": ("none", *APP_TASKS),
}

# Checks of range and choice, one row per field: (predicate, what the value must be).
_POSITIVE = (lambda v: v > 0, "> 0")
_NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
_CHECKS: dict[str, tuple[Any, str]] = {
    "train.filter_nets": _POSITIVE,
    "train.filter_quantile": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "model.latent_dim": _POSITIVE,
    "model.g_hidden": (lambda v: all(h > 0 for h in v), "positive widths"),
    "model.d_hidden": (lambda v: all(h > 0 for h in v), "positive widths"),
    "model.leak": _NON_NEGATIVE,
    "model.bn_momentum": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "model.width": _POSITIVE,
    "model.d_fc": _NON_NEGATIVE,
    "model.g_fc": _NON_NEGATIVE,
    "model.g_out": (lambda v: v in ("tanh", "linear"), "one of tanh, linear"),
    "model.num_classes": (lambda v: v >= 2, ">= 2"),
    "model.embed_dim": _POSITIVE,
    "model.d_dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "model.minibatch_discrimination": _NON_NEGATIVE,
    "model.minibatch_kernel_dim": _POSITIVE,
    "model.pack": _POSITIVE,
    "data.image_size": _NON_NEGATIVE,
    "data.channels": (lambda v: v in (0, 1, 3), "0, 1 or 3"),
    "data.limit": _NON_NEGATIVE,
    "optim.lr_g": _POSITIVE,
    "optim.lr_d": _POSITIVE,
    "optim.betas_g": (lambda v: all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "optim.betas_d": (lambda v: all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "optim.decay_from": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "train.steps": _POSITIVE,
    "train.batch_size": _POSITIVE,
    "train.d_steps": _POSITIVE,
    "train.g_steps": _POSITIVE,
    "train.seed": (lambda v: 0 <= v < 2**32, "in [0, 2**32)"),  # numpy's seed range
    "train.device": (
        lambda v: v in ("auto", "cpu", "cuda") or (v[:5] == "cuda:" and v[5:].isdigit()),
        "auto, cpu, cuda or cuda:N",
    ),
    "train.precision": (
        lambda v: v in ("fp32", "tf32", "bf16", "fp16"),
        "fp32, tf32, bf16 or fp16",
    ),
    "train.threads": _NON_NEGATIVE,
    "train.log_every": _POSITIVE,
    "train.sample_every": _POSITIVE,
    "train.n_samples": _POSITIVE,
    "train.ckpt_every": _POSITIVE,
    "train.ckpt_seconds": _NON_NEGATIVE,
    "train.seconds": _NON_NEGATIVE,
    "train.keep_ckpts": _POSITIVE,
    "train.aux_weight": _NON_NEGATIVE,
    "train.stage_steps": _POSITIVE,
    "train.fade_steps": _NON_NEGATIVE,
    "train.stage_batch": (lambda v: all(b > 0 for b in v), "positive sizes"),
    "train.max_rollbacks": _NON_NEGATIVE,
    "stab.gp": _NON_NEGATIVE,
    "stab.r1": _NON_NEGATIVE,
    "stab.r2": _NON_NEGATIVE,
    "stab.reg_every": _POSITIVE,
    "stab.drift": _NON_NEGATIVE,
    "stab.clip": _POSITIVE,
    "stab.smooth_real": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "stab.instance_noise": _NON_NEGATIVE,
    "stab.noise_steps": _NON_NEGATIVE,
    "stab.feature_matching": _NON_NEGATIVE,
    "stab.historical_averaging": _NON_NEGATIVE,
    "stab.ema": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "stab.ema_rampup": _NON_NEGATIVE,
    "stab.augment": (
        lambda v: all(a in AUGMENT_NAMES for a in v.split(",") if a),
        f"comma-separated names of {', '.join(AUGMENT_NAMES)}",
    ),
    "train.eval_every": _NON_NEGATIVE,
    "train.eval_n": (lambda v: v >= 10, ">= 10"),
    "diagnose.window": _POSITIVE,
    "diagnose.d_strong_loss": _POSITIVE,
    "diagnose.d_strong_fake": (lambda v: 0 < v < 1, "in (0, 1)"),
    "diagnose.g_grad_vanish": _NON_NEGATIVE,
    "diagnose.fooled_prob": (lambda v: 0 < v < 1, "in (0, 1)"),
    "diagnose.fooled_loss": _POSITIVE,
    "diagnose.collapse_ratio": _NON_NEGATIVE,
    "diagnose.collapse_checks": _POSITIVE,
    "diagnose.osc_growth": (lambda v: v > 1, "> 1"),
    "diagnose.osc_min": _NON_NEGATIVE,
    "train.snapshot_every": _NON_NEGATIVE,
    "app.scale": (lambda v: v in (2, 4), "2 or 4"),
    "app.content": _NON_NEGATIVE,
    "app.adv": _NON_NEGATIVE,
    "app.feature": _NON_NEGATIVE,
    "app.cycle": _NON_NEGATIVE,
    "app.identity": _NON_NEGATIVE,
    "app.pool": _NON_NEGATIVE,
    "app.blocks": _POSITIVE,
    "app.patch": (lambda v: v >= 8 and v % 8 == 0, "a multiple of 8, at least 8"),
    "app.holdout": _NON_NEGATIVE,
}


def presets_text() -> str:
    """One line per preset, for help texts."""
    return "\n".join(f"  {name:<14} {p.about}" for name, p in PRESETS.items())


def fields_of(cfg: Config) -> dict[str, type]:
    """Every settable dotted key and its type: ``{"train.steps": int, ...}``."""
    return dict(_fields())


@functools.cache
def _fields() -> dict[str, Any]:
    # The sections' classes never change: their type hints (slow to evaluate, ~0.3 s for a
    # whole config) are read once per process.
    out: dict[str, Any] = {"preset": str}
    cfg = Config()
    for name in SECTIONS:
        section = getattr(cfg, name)
        hints = typing.get_type_hints(type(section))
        for f in dataclasses.fields(section):
            out[f"{name}.{f.name}"] = hints[f.name]
    return out


def resolve_key(key: str, cfg: Config | None = None) -> str:
    """The full dotted key for ``key``, which may be a bare leaf such as ``lr_d``."""
    known = fields_of(cfg or Config())
    if key in known:
        return key
    matches = [k for k in known if k.split(".")[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"ambiguous key {key!r}: say one of {', '.join(matches)}")
    raise ConfigError(f"unknown config key {key!r} (see `ganforge train --help` for the keys)")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def parse_value(key: str, raw: Any, tp: Any) -> Any:
    """``raw`` (a string from the command line, or a TOML/JSON value) as a value of type ``tp``."""
    origin = typing.get_origin(tp)
    try:
        if origin is tuple:
            args = typing.get_args(tp)
            if isinstance(raw, str):
                text = raw.strip().strip("()[]")
                items: list[Any] = [s.strip() for s in text.split(",") if s.strip()]
            elif isinstance(raw, (list, tuple)):
                items = list(raw)
            else:
                raise ValueError
            item_tp = args[0]
            if not (len(args) == 2 and args[1] is Ellipsis) and len(items) != len(args):
                raise ConfigError(
                    f"{key}: expected {len(args)} comma-separated values, got {len(items)}"
                )
            return tuple(parse_value(key, i, item_tp) for i in items)
        if origin in (typing.Union, types.UnionType):
            raise ValueError  # no optional fields today; refuse rather than guess
        if tp is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in (
                "true",
                "yes",
                "on",
                "1",
                "false",
                "no",
                "off",
                "0",
            ):
                return raw.lower() in ("true", "yes", "on", "1")
            raise ValueError
        if tp is int:
            if isinstance(raw, bool):
                raise ValueError
            if isinstance(raw, int):
                return raw
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if isinstance(raw, str):
                try:
                    return int(raw)
                except ValueError:
                    f = float(raw)  # accepts 1e4
                    if f.is_integer():
                        return int(f)
            raise ValueError
        if tp is float:
            if isinstance(raw, bool):
                raise ValueError
            if isinstance(raw, (int, float)):
                return float(raw)
            if isinstance(raw, str):
                return float(raw)
            raise ValueError
        if tp is str:
            if isinstance(raw, str):
                return raw
            raise ValueError
    except (ValueError, TypeError):
        pass
    raise ConfigError(f"{key}: expected {_describe(tp)}, got {raw!r}")


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"comma-separated {_type_name(args[0])} values"
        return f"{len(args)} comma-separated {_type_name(args[0])} values"
    return {"bool": "true or false", "int": "an integer", "float": "a number"}.get(
        _type_name(tp), _type_name(tp)
    )


def set_value(cfg: Config, key: str, raw: Any) -> None:
    """Set dotted ``key`` (or an unambiguous leaf) of ``cfg`` from ``raw``, parsed and validated."""
    full = resolve_key(key, cfg)
    value = parse_value(full, raw, fields_of(cfg)[full])
    _check(full, value)
    if full == "preset":
        cfg.preset = value
        return
    section, name = full.split(".")
    setattr(getattr(cfg, section), name, value)


def get_value(cfg: Config, key: str) -> Any:
    """The value of dotted ``key`` (or ``preset``) in ``cfg``."""
    if key == "preset":
        return cfg.preset
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _check(key: str, value: Any) -> None:
    items = value if isinstance(value, tuple) else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in items):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    choices = CHOICES.get(key)
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: unknown value {value!r}; choose one of {', '.join(choices)}")
    check = _CHECKS.get(key)
    if check is not None and not check[0](value):
        raise ConfigError(f"{key}: must be {check[1]}, got {value!r}")


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in table.items():
        if isinstance(v, Mapping):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def apply(cfg: Config, values: Mapping[str, Any]) -> Config:
    """Apply a nested or dotted mapping of values (a preset, a TOML table, config.json)."""
    for key, raw in _flatten(values):
        set_value(cfg, key, raw)
    return cfg


def preset(name: str) -> Config:
    """A fresh config of preset ``name``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    cfg = Config(preset=name)
    return apply(cfg, PRESETS[name].values)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The tables of a TOML config file; errors name the file and the line."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None


def split_override(text: str) -> tuple[str, str]:
    """``"train.lr_d=1e-4"`` -> ``("train.lr_d", "1e-4")``."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"expected key=value, got {text!r}")
    return key.strip(), raw.strip()


def build(
    preset_name: str | None = None,
    config_file: str | Path | None = None,
    overrides: Iterable[str] = (),
) -> Config:
    """Defaults <- preset <- TOML file <- ``key=value`` overrides, each validated."""
    table = read_toml(config_file) if config_file else {}
    name = preset_name or table.pop("preset", None) or Config.preset
    if preset_name:
        table.pop("preset", None)
    cfg = preset(str(name))
    apply(cfg, table)
    for text in overrides:
        set_value(cfg, *split_override(text))
    return cfg


def from_json(path: str | Path) -> Config:
    """The config a run saved, re-validated."""
    p = Path(path)
    try:
        table = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the run's config: {e}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{p}: expected a JSON object")
    name = table.pop("preset", Config.preset)
    cfg = Config(preset=str(name))
    return apply(cfg, table)


def describe_keys() -> str:
    """Every key with its default and comment, for ``--help``."""
    lines = []
    cfg = Config()
    for name in SECTIONS:
        section = getattr(cfg, name)
        src = inspect.getsource(type(section))
        comments = {}
        for line in src.splitlines():
            head, _, comment = line.partition("#")
            if ":" in head and comment:
                comments[head.split(":")[0].strip()] = comment.strip()
        for f in dataclasses.fields(section):
            default = getattr(section, f.name)
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            lines.append(f"  {name}.{f.name}={shown}  {comments.get(f.name, '')}")
    return "\n".join(lines)
