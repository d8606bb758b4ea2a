"""Every mistake a user can make at the command line: one line, an exit code, nothing written.

One table, ``CASES``: (arguments, exit code, the start of the message after ``error:``).
Placeholders in the arguments name prepared files (``ASSETS``): ``{run}`` a trained tiny run,
``{data}`` a folder of bad data files, ``{out}`` a fresh output path. After each case the whole
asset tree must be unchanged, byte for byte, and ``{out}`` must not exist.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from conftest import TINY
from ganforge.cli import main
from ganforge.data.arrays import from_arrays, load_array_file
from ganforge.errors import DataError

# A tiny run trains on these 64 random 8 x 8 gray images (fast to load, no mnist5k parse).
RUN_ARGS = [*TINY, "data.limit=0", "train.batch_size=8", "train.n_samples=4"]


def _png(path: Path, size: tuple[int, int] = (8, 8), mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), 7).save(buf, format="PNG")
    return buf.getvalue()


def _make_data(d: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(d / "good.npy", rng.integers(0, 256, size=(64, 8, 8), dtype=np.uint8))
    # image folders
    (d / "empty").mkdir()
    (d / "texts").mkdir()
    (d / "texts" / "a.txt").write_text("not an image")
    _png(d / "onebad" / "a.png")
    _png(d / "onebad" / "c.png")
    (d / "onebad" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _png(d / "truncated" / "a.png")
    (d / "truncated" / "b.png").write_bytes(_png_bytes()[:40])
    (d / "allbad").mkdir()
    for name in ("a.png", "b.jpg"):
        (d / "allbad" / name).write_bytes(b"junk")
    _png(d / "sizes" / "a.png", (8, 8))
    _png(d / "sizes" / "b.png", (9, 8))
    _png(d / "sizes_rgb" / "a.png", (8, 8), "RGB")
    _png(d / "sizes_rgb" / "b.png", (8, 10), "L")
    # arrays
    arrays = {
        "one_d.npy": np.zeros(10, np.float32),
        "five_d.npy": np.zeros((2, 1, 1, 4, 4), np.float32),
        "strings.npy": np.array(["a", "b"]),
        "complex.npy": np.zeros((4, 2), np.complex64),
        "nan.npy": np.array([[0.0, np.nan], [1.0, 2.0]], np.float32),
        "inf.npy": np.array([[0.0, np.inf], [1.0, 2.0]], np.float32),
        "empty.npy": np.zeros((0, 8, 8), np.uint8),
        "range.npy": np.full((4, 8, 8), 300.0, np.float32),
        "channels.npy": np.zeros((4, 2, 5, 5), np.uint8),
        "big.npy": np.full((4, 2), 1e300, np.float64),
        "points.npy": np.full((16, 2), 3.0, np.float32),
    }
    for name, a in arrays.items():
        np.save(d / name, a)
    np.savez(d / "keys.npz", a=np.zeros((4, 2)), b=np.zeros((4, 2)))
    np.savez(d / "nothing.npz")
    np.savez(d / "ylabels.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(4, np.float32))
    np.savez(d / "ylen.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(3, np.int64))
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    full = (d / "good.npy").read_bytes()
    (d / "cut.npy").write_bytes(full[: len(full) // 2])
    (d / "text.npy").write_text("hello")
    (d / "cut.npz").write_bytes((d / "keys.npz").read_bytes()[:50])
    (d / "table.txt").write_text("1,2\n")
    # IDX and CIFAR-10 folders
    (d / "idx").mkdir()
    header = struct.pack(">IIII", 2051, 10, 28, 28)
    (d / "idx" / "train-images-idx3-ubyte").write_bytes(header + bytes(100))
    (d / "idx_magic").mkdir()
    (d / "idx_magic" / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 7, 1, 2, 2))
    (d / "idx_gz").mkdir()
    (d / "idx_gz" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header)[:-6])
    (d / "cifar").mkdir()
    (d / "cifar" / "data_batch_1.bin").write_bytes(bytes(3073 + 100))
    # configs
    (d / "broken.toml").write_text("[train\nsteps = 3\n")
    (d / "unknown.toml").write_text("[train]\nstepz = 3\n")
    (d / "wrongtype.toml").write_text('[train]\nsteps = "ten"\n')
    (d / "preset.toml").write_text('preset = "nope"\n')
    (d / "list.toml").write_text("[model]\nlatent_dim = [1, 2]\n")
    (d / "binary.toml").write_bytes(b"\xff\xfe\x00junk")
    (d / "afile").write_text("x")


def _make_runs(root: Path) -> None:
    data = root / "data" / "good.npy"
    run = root / "run"
    args = ["train", "--out", str(run), "--data", str(data), "--steps", "5", "--quiet", *RUN_ARGS]
    code = main(args)
    assert code == 0 and (run / "checkpoints" / "step-000005.safetensors").exists()
    (root / "notrun").mkdir()
    (root / "notrun" / "x.txt").write_text("x")
    variants = {
        "nockpt": lambda r: shutil.rmtree(r / "checkpoints"),
        "badjson": lambda r: (r / "config.json").write_text("{not json"),
        "listjson": lambda r: (r / "config.json").write_text("[1, 2]"),
        "keyjson": lambda r: (r / "config.json").write_text(json.dumps({"model": {"depth": 3}})),
        "otherarch": lambda r: (r / "config.json").write_text(
            (r / "config.json").read_text().replace('"latent_dim": 8', '"latent_dim": 9')
        ),
        "corrupt": lambda r: (r / "checkpoints" / "step-000005.safetensors").write_bytes(
            (r / "checkpoints" / "step-000005.safetensors").read_bytes()[:-9]
        ),
        "nodata": lambda r: (r / "config.json").write_text(
            (r / "config.json").read_text().replace(str(data), str(root / "data" / "gone.npy"))
        ),
    }
    for name, change in variants.items():
        shutil.copytree(run, root / name)
        change(root / name)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("assets")
    (root / "data").mkdir()
    _make_data(root / "data")
    _make_runs(root)
    return root


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
    }


T = ["train", "--out", "{out}", "--quiet"]  # a train command into a fresh folder
TD = [*T, "--data", "{data}/good.npy", *RUN_ARGS]  # ... on data that loads
S = ["sample", "{run}", "--out", "{out}.npy"]
A = ["ablate", "--out", "{out}", "--quiet"]

CASES = [
    # ---- config: keys, types, values
    ([*T, "nosuch=1"], 2, "unknown config key 'nosuch'"),
    ([*T, "model.depth=3"], 2, "unknown config key 'model.depth'"),
    ([*T, "=3"], 2, "expected key=value, got '=3'"),
    ([*T, "oops"], 2, "expected key=value, got 'oops'"),
    ([*T, "steps=abc"], 2, "train.steps: expected an integer, got 'abc'"),
    ([*T, "d_steps=1.5"], 2, "train.d_steps: expected an integer, got '1.5'"),
    ([*T, "lr_g=fast"], 2, "optim.lr_g: expected a number, got 'fast'"),
    ([*T, "tensorboard=maybe"], 2, "train.tensorboard: expected true or false, got 'maybe'"),
    ([*T, "betas_d=0.5"], 2, "optim.betas_d: expected 2 comma-separated values, got 1"),
    ([*T, "g_hidden=16,x"], 2, "model.g_hidden: expected an integer, got 'x'"),
    ([*T, "loss=hinge-ish"], 2, "train.loss: unknown value 'hinge-ish'; choose one of"),
    ([*T, "arch=transformer"], 2, "model.arch: unknown value 'transformer'; choose one of"),
    ([*T, "g_out=relu"], 2, "model.g_out: must be one of tanh, linear, got 'relu'"),
    ([*T, "on_nonfinite=ignore"], 2, "train.on_nonfinite: unknown value 'ignore'"),
    ([*T, "device=tpu"], 2, "train.device: must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    *(
        [([*TD, "device=cuda:0"], 2, "train.device=cuda:0, but CUDA is not available here")]
        if not torch.cuda.is_available()
        else []
    ),
    ([*T, "--preset", "nope"], 2, "argument --preset: invalid choice: 'nope'"),
    ([*T, "preset=nope"], 2, "preset: unknown value 'nope'; choose one of"),
    # ---- config: zero and negative sizes and rates
    ([*T, "--steps", "-5"], 2, "train.steps: must be > 0, got -5"),
    ([*T, "--steps", "0"], 2, "train.steps: must be > 0, got 0"),
    ([*T, "--steps", "ten"], 2, "argument --steps: invalid int value: 'ten'"),
    ([*T, "--seed", "-1"], 2, "train.seed: must be in [0, 2**32), got -1"),
    ([*T, "batch_size=0"], 2, "train.batch_size: must be > 0, got 0"),
    ([*T, "batch_size=-8"], 2, "train.batch_size: must be > 0, got -8"),
    ([*T, "d_steps=0"], 2, "train.d_steps: must be > 0, got 0"),
    ([*T, "lr_d=0"], 2, "optim.lr_d: must be > 0, got 0.0"),
    ([*T, "lr_g=-1e-4"], 2, "optim.lr_g: must be > 0, got -0.0001"),
    ([*T, "lr_g=nan"], 2, "optim.lr_g: must be a finite number, got nan"),
    ([*T, "lr_d=inf"], 2, "optim.lr_d: must be a finite number, got inf"),
    ([*T, "betas_g=0.5,1.0"], 2, "optim.betas_g: must be two numbers in [0, 1)"),
    ([*T, "latent_dim=0"], 2, "model.latent_dim: must be > 0, got 0"),
    ([*T, "model.pack=0"], 2, "model.pack: must be > 0, got 0"),
    ([*T, "stab.augment=flip"], 2, "stab.augment: must be comma-separated names of translati"),
    ([*T, "--preset", "ring8", "stab.augment=cutout"], 2, "stab.augment works on images [C, H, W]"),
    ([*TD, "model.pack=3"], 2, "model.pack=3 needs train.batch_size divisible by it, got 8"),
    ([*T, "decay_from=1.5"], 2, "optim.decay_from: must be in [0, 1], got 1.5"),
    ([*T, "g_hidden=16,-1"], 2, "model.g_hidden: must be positive widths, got (16, -1)"),
    ([*T, "width=-4"], 2, "model.width: must be > 0, got -4"),
    ([*T, "leak=-0.1"], 2, "model.leak: must be >= 0, got -0.1"),
    ([*T, "bn_momentum=0"], 2, "model.bn_momentum: must be in (0, 1], got 0.0"),
    ([*T, "image_size=-28"], 2, "data.image_size: must be >= 0, got -28"),
    ([*T, "channels=2"], 2, "data.channels: must be 0, 1 or 3, got 2"),
    ([*T, "limit=-1"], 2, "data.limit: must be >= 0, got -1"),
    ([*T, "log_every=0"], 2, "train.log_every: must be > 0, got 0"),
    ([*T, "sample_every=-1"], 2, "train.sample_every: must be > 0, got -1"),
    ([*T, "ckpt_every=0"], 2, "train.ckpt_every: must be > 0, got 0"),
    ([*T, "keep_ckpts=0"], 2, "train.keep_ckpts: must be > 0, got 0"),
    ([*T, "n_samples=0"], 2, "train.n_samples: must be > 0, got 0"),
    ([*T, "threads=-2"], 2, "train.threads: must be >= 0, got -2"),
    ([*T, "max_rollbacks=-1"], 2, "train.max_rollbacks: must be >= 0, got -1"),
    ([*T, "--seed", "4294967296"], 2, "train.seed: must be in [0, 2**32), got 4294967296"),
    # ---- sizes too large for memory: refused by the allocator before anything is written
    ([*TD, "n_samples=100000000000"], 1, "out of memory (tried to allocate 2,980.2 GiB)"),
    ([*TD, "latent_dim=10000000000"], 1, "out of memory (tried to allocate 596.0 GiB)"),
    # ---- config files
    ([*T, "--config", "{data}/missing.toml"], 2, "config file not found: "),
    ([*T, "--config", "{data}"], 2, "config file not found: "),
    ([*T, "--config", "{data}/broken.toml"], 2, "{data}/broken.toml: not valid TOML: "),
    ([*T, "--config", "{data}/binary.toml"], 2, "{data}/binary.toml: not valid TOML: "),
    ([*T, "--config", "{data}/unknown.toml"], 2, "unknown config key 'train.stepz'"),
    ([*T, "--config", "{data}/wrongtype.toml"], 2, "train.steps: expected an integer, got 'ten'"),
    ([*T, "--config", "{data}/preset.toml"], 2, "unknown preset 'nope'; choose one of"),
    ([*T, "--config", "{data}/list.toml"], 2, "model.latent_dim: expected an integer, got [1, 2]"),
    # ---- data: missing, empty, unreadable
    ([*T, "--data", "no/such/folder"], 1, "no/such/folder: no such file or folder"),
    ([*T, "--data", "nosuchset"], 1, "unknown data source 'nosuchset'"),
    ([*T, "--data", " "], 1, "no data given: name a data source or a path"),
    ([*T, "--data", "{data}/empty"], 1, "{data}/empty: the folder is empty"),
    ([*T, "--data", "{data}/texts"], 1, "{data}/texts: no images found"),
    ([*T, "--data", "{data}/allbad"], 1, "{data}/allbad: none of the 2 images could be read"),
    ([*T, "--data", "{data}/onebad", "skip_bad=false"], 1, "{data}/onebad/b.png: not a readable"),
    ([*T, "--data", "{data}/truncated", "skip_bad=0"], 1, "{data}/truncated/b.png: not a readable"),
    ([*T, "--data", "{data}/sizes"], 1, "{data}/sizes/a.png is 8x8 but {data}/sizes/b.png is 9x8"),
    ([*T, "--data", "{data}/sizes_rgb"], 1, "{data}/sizes_rgb/a.png is 8x8 but"),
    ([*T, "--data", "{data}/table.txt"], 1, "{data}/table.txt: unsupported file type"),
    ([*T, "--data", "{data}/idx"], 1, "{data}/idx/train-images-idx3-ubyte: size mismatch"),
    ([*T, "--data", "{data}/idx_magic"], 1, "{data}/idx_magic/train-images-idx3-ubyte: not an"),
    ([*T, "--data", "{data}/idx_gz"], 1, "{data}/idx_gz/train-images-idx3-ubyte.gz: cannot read"),
    ([*T, "--data", "{data}/cifar"], 1, "{data}/cifar/data_batch_1.bin: 3173 bytes is not a whole"),
    ([*T, "--data", "fashion-mnist", "root={data}"], 1, "fashion-mnist: not found in {data}/"),
    # ---- data: arrays of the wrong shape, dtype or values
    ([*T, "--data", "{data}/one_d.npy"], 1, "{data}/one_d.npy: expected images [N, H, W]"),
    ([*T, "--data", "{data}/five_d.npy"], 1, "{data}/five_d.npy: expected images [N, H, W]"),
    ([*T, "--data", "{data}/strings.npy"], 1, "{data}/strings.npy: non-numeric dtype <U1"),
    ([*T, "--data", "{data}/complex.npy"], 1, "{data}/complex.npy: non-numeric dtype complex64"),
    ([*T, "--data", "{data}/nan.npy"], 1, "{data}/nan.npy: the data contains NaN or infinite"),
    ([*T, "--data", "{data}/inf.npy"], 1, "{data}/inf.npy: the data contains NaN or infinite"),
    ([*T, "--data", "{data}/big.npy"], 1, "{data}/big.npy: values reach 1e+300, beyond float32"),
    ([*T, "--data", "{data}/empty.npy"], 1, "{data}/empty.npy: the array is empty"),
    ([*T, "--data", "{data}/range.npy"], 1, "{data}/range.npy: image values span [300, 300]"),
    ([*T, "--data", "{data}/channels.npy"], 1, "{data}/channels.npy: 4-D images need 1 or 3"),
    ([*T, "--data", "{data}/keys.npz"], 1, "{data}/keys.npz: holds arrays ['a', 'b']"),
    ([*T, "--data", "{data}/nothing.npz"], 1, "{data}/nothing.npz: the archive holds no arrays"),
    ([*T, "--data", "{data}/ylabels.npz"], 1, "{data}/ylabels.npz: labels 'y' must be integers"),
    ([*T, "--data", "{data}/ylen.npz"], 1, "{data}/ylen.npz: labels 'y' have shape [3]"),
    ([*T, "--data", "{data}/objects.npy"], 1, "{data}/objects.npy: holds pickled Python objects"),
    ([*T, "--data", "{data}/cut.npy"], 1, "{data}/cut.npy: not a readable NumPy file"),
    ([*T, "--data", "{data}/text.npy"], 1, "{data}/text.npy: not a readable NumPy file"),
    ([*T, "--data", "{data}/cut.npz"], 1, "{data}/cut.npz: not a readable NumPy file"),
    # ---- data and model that do not fit together
    ([*TD, "batch_size=65"], 2, "train.batch_size=65 exceeds the 64 samples"),
    ([*TD, "arch=dcgan", "image_size=30"], 2, "the dcgan model makes images of size"),
    ([*T, "--data", "{data}/inf.npy", "arch=dcgan"], 1, "{data}/inf.npy: the data contains"),
    ([*TD, "batch_size=1"], 2, "train.batch_size=1 cannot train the BatchNorm layers of G"),
    ([*T, "stage_batch=16,0"], 2, "train.stage_batch: must be positive sizes, got (16, 0)"),
    (
        [*TD, "stage_batch=4,4"],
        2,
        "train.stage_batch sets the batch of each stage of model.arch=progressive; "
        "model.arch=mlp has one: set train.batch_size",
    ),
    (
        [*TD, "arch=progressive", "stage_batch=8,4,2"],
        2,
        "train.stage_batch gives 3 batch size(s); model.arch=progressive at 8 x 8 has 2 "
        "stages (4, 8): give one per stage",
    ),
    ([*TD, "arch=progressive", "stage_batch=8,65"], 2, "train.stage_batch=65 exceeds the 64"),
    (
        [*T, "--data", "{data}/points.npy", *RUN_ARGS, "arch=dcgan", "g_out=linear"],
        2,
        "the dcgan model needs square",
    ),
    ([*T, "--data", "{data}/points.npy", *RUN_ARGS, "batch_size=4"], 2, "the points lie outside"),
    # ---- output folders
    ([*TD[:1], "--out", "{run}", "--quiet", *TD[4:]], 1, "output folder {run} already exists"),
    ([*TD[:1], "--out", "{data}/afile", *TD[3:]], 1, "output path {data}/afile exists and is"),
    ([*TD[:1], "--out", "{data}/afile/run", *TD[3:]], 1, "cannot write to output folder"),
    # ---- resume
    (["train", "--resume", "{root}/notrun"], 1, "{root}/notrun is not a ganforge run"),
    (["train", "--resume", "{root}/nosuchrun"], 1, "{root}/nosuchrun is not a ganforge run"),
    (["train", "--resume", "{root}/badjson"], 2, "{root}/badjson/config.json: cannot read"),
    (["train", "--resume", "{root}/listjson"], 2, "{root}/listjson/config.json: expected a JSON"),
    (["train", "--resume", "{root}/keyjson"], 2, "unknown config key 'model.depth'"),
    (["train", "--resume", "{root}/otherarch"], 1, "{root}/otherarch: the checkpoint was made by"),
    (["train", "--resume", "{root}/corrupt"], 1, "{root}/corrupt/checkpoints/step-000005.safet"),
    (["train", "--resume", "{root}/nodata", "--steps", "6"], 1, "{root}/data/gone.npy: no such"),
    (["train", "--resume", "{run}", "model.arch=dcgan"], 2, "model.arch cannot change when"),
    (["train", "--resume", "{run}", "lr_d=1"], 2, "optim.lr_d cannot change when resuming"),
    (["train", "--resume", "{run}", "--seed", "3"], 2, "--seed cannot be combined with --resume"),
    (["train", "--resume", "{run}", "--preset", "mnist-dcgan"], 2, "--preset cannot be combined"),
    (["train", "--resume", "{run}", "--data", "x.npy"], 2, "--data cannot be combined with"),
    (["train", "--resume", "{run}", "--steps", "0"], 2, "train.steps: must be > 0, got 0"),
    (["train", "--resume", "{run}", "--steps", "3"], 2, "train.steps=3 is below the step 5"),
    (["train", "--resume", "{run}", "nosuch=1"], 2, "unknown config key 'nosuch'"),
    # ---- sample
    ([*S[:1], "{root}/notrun", *S[2:]], 1, "{root}/notrun is not a ganforge run"),
    ([*S[:1], "{root}/nockpt", *S[2:]], 1, "{root}/nockpt has no checkpoint to load"),
    ([*S[:1], "{root}/corrupt", *S[2:]], 1, "{root}/corrupt/checkpoints/step-000005.safetensors:"),
    ([*S, "--n", "0"], 1, "--n must be a positive number of samples, got 0"),
    ([*S, "--n", "-3"], 1, "--n must be a positive number of samples, got -3"),
    ([*S, "--n", "many"], 2, "argument --n: invalid int value: 'many'"),
    ([*S, "--n", "100000000000"], 1, "out of memory (tried to allocate 2,980.2 GiB)"),
    ([*S[:3], "{out}.jpg"], 1, "--out must end in .npy or .png, not '.jpg'"),
    ([*S[:3], "{out}/x.npy"], 1, "folder {out} does not exist"),
    (["sample", "{run}"], 2, "the following arguments are required: --out"),
    (["sample", "{run}", "--out", "{out}.npy", "n=3"], 2, "unrecognized arguments: n=3"),
    # ---- ablate: every cell's config is checked before any run starts
    ([*A, "--preset", "nope"], 2, "unknown preset 'nope'; choose one of"),
    ([*A, "--seeds", "0"], 2, "--seeds must be at least 1, got 0"),
    ([*A, "--jobs", "0"], 2, "--jobs must be at least 1, got 0"),
    ([*A, "--steps", "-1"], 2, "--steps must be at least 1, got -1"),
    ([*A, "--samples", "0"], 2, "--samples must be at least 1, got 0"),
    ([*A, "--vary", "lr_d=abc"], 2, "optim.lr_d: expected a number, got 'abc'"),
    ([*A, "--vary", "nosuch=1,2"], 2, "unknown config key 'nosuch'"),
    ([*A, "--vary", "lr_d"], 2, "--vary expects key=v1,v2,..., got 'lr_d'"),
    ([*A, "--cell", "lr_d=0"], 2, "optim.lr_d: must be > 0, got 0.0"),
    ([*A, "--cell", "oops"], 2, "expected key=value, got 'oops'"),
    ([*A, "nosuch=1"], 2, "unknown config key 'nosuch'"),
    # ---- the command itself
    (["bogus"], 2, "argument COMMAND: invalid choice: 'bogus'"),
    (["train", "--stepz", "3"], 2, "unrecognized arguments: --stepz"),
]


def _fill(text: str, assets: Path, out: Path) -> str:
    return text.format(root=assets, run=assets / "run", data=assets / "data", out=out)


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=lambda v: str(v)[:60])
def test_bad_input_gives_one_line_an_exit_code_and_writes_nothing(
    cli, assets, tmp_path, args, code, message
):
    out = tmp_path / "out"
    before = _snapshot(assets)
    got, stdout, err = cli(*[_fill(a, assets, out) for a in args])
    assert (got, len(err.strip().splitlines())) == (code, 1), err
    # "ganforge train: error: ..." from the command, "ganforge: error: ..." from the top parser
    head = re.match(r"ganforge( [a-z]+)?: error: ", err)
    assert head is not None, err
    assert err[head.end() :].startswith(_fill(message, assets, out)), err
    assert "Traceback" not in err and not stdout
    assert not list(tmp_path.iterdir()), "something was written"
    assert _snapshot(assets) == before, "a prepared file changed"


def test_the_table_covers_every_command():
    assert len(CASES) >= 50
    assert {args[0] for args, _, _ in CASES} >= {"train", "sample", "ablate"}


# ---------------------------------------------------------------- switches that are not errors


def test_unreadable_images_are_skipped_and_counted(cli, assets, tmp_path):
    with pytest.warns(UserWarning, match=r"onebad: skipped 1 unreadable image\(s\); first: "):
        code, _, err = cli(
            *T[:1], "--out", tmp_path / "r", "--quiet", "--data", assets / "data" / "onebad",
            *RUN_ARGS, "batch_size=2", "--steps", "1",
        )  # fmt: skip
    assert code == 0, err


def test_mixed_channels_and_sizes_are_made_alike_when_asked(cli, assets, tmp_path):
    code, _, err = cli(
        *T[:1], "--out", tmp_path / "r", "--quiet", "--data", assets / "data" / "sizes_rgb",
        *RUN_ARGS, "batch_size=2", "image_size=8", "--steps", "1",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data"]["image_size"] == 8


# ---------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    x=hnp.arrays(
        dtype=st.sampled_from(
            [np.uint8, np.int16, np.int64, np.float16, np.float32, np.float64, np.bool_]
        ),
        shape=hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=4),
    )
)
def test_array_loader_gives_a_dataset_or_one_data_error(x):
    """Any numeric array: a Dataset that holds finite values of the documented kind, or a
    DataError of one line; never another exception."""
    try:
        ds = from_arrays(x, None, "x")
    except DataError as e:
        assert "\n" not in str(e) and str(e).startswith("x: ")
        return
    assert len(ds) == len(x) > 0
    if ds.kind == "points":
        assert x.ndim == 2 and ds.x.dtype.is_floating_point
    else:
        assert ds.x.ndim == 4 and ds.x.shape[1] in (1, 3)
        if ds.x.is_floating_point():
            assert float(ds.x.min()) >= -1 and float(ds.x.max()) <= 1
    assert bool(ds.x.float().isfinite().all())


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_array_files_of_any_bytes_give_one_data_error_or_a_dataset(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "x.npy"
    path.write_bytes(b"\x93NUMPY" + data if data[:1] == b"\x00" else data)
    try:
        load_array_file(path)
    except DataError as e:
        assert "\n" not in str(e)
