import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganforge import config as c
from ganforge.errors import ConfigError


def test_defaults_are_the_course_settings():
    cfg = c.build()
    assert cfg.preset == "mnist-mlp"
    assert (cfg.model.arch, cfg.model.latent_dim) == ("mlp", 100)
    assert cfg.model.g_hidden == (128, 256, 512) and cfg.model.d_hidden == (512, 256)
    assert (cfg.optim.lr_g, cfg.optim.lr_d) == (2e-4, 2e-4)
    assert cfg.optim.betas_g == (0.5, 0.999) == cfg.optim.betas_d
    assert (cfg.train.batch_size, cfg.train.d_steps, cfg.train.loss) == (64, 1, "ns")
    assert cfg.data.source == "mnist5k"


def test_presets_apply_their_values():
    cfg = c.build("mnist-dcgan")
    assert cfg.preset == "mnist-dcgan" and cfg.model.arch == "dcgan"
    assert cfg.data.image_size == 28


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("train.steps=500", ("train", "steps"), 500),
        ("steps=1e3", ("train", "steps"), 1000),
        ("lr_d=1e-4", ("optim", "lr_d"), 1e-4),
        ("optim.lr_g=3", ("optim", "lr_g"), 3.0),
        ("betas_g=0.1,0.9", ("optim", "betas_g"), (0.1, 0.9)),
        ("betas_d=(0.0, 0.99)", ("optim", "betas_d"), (0.0, 0.99)),
        ("g_hidden=64,64", ("model", "g_hidden"), (64, 64)),
        ("g_batchnorm=false", ("model", "g_batchnorm"), False),
        ("tensorboard=yes", ("train", "tensorboard"), True),
        ("loss=minimax", ("train", "loss"), "minimax"),
        ("data.source=some/folder", ("data", "source"), "some/folder"),
    ],
)
def test_overrides_are_parsed_to_the_field_type(text, key, expected):
    cfg = c.build(overrides=[text])
    assert getattr(getattr(cfg, key[0]), key[1]) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train.stepz=5", "unknown config key 'train.stepz'"),
        ("nosuchkey=1", "unknown config key 'nosuchkey'"),
        ("steps=ten", "train.steps: expected an integer, got 'ten'"),
        ("steps=2.5", "train.steps: expected an integer, got '2.5'"),
        ("steps=0", "train.steps: must be > 0, got 0"),
        ("batch_size=-3", "train.batch_size: must be > 0, got -3"),
        ("lr_d=-1e-4", "optim.lr_d: must be > 0"),
        ("lr_g=fast", "optim.lr_g: expected a number, got 'fast'"),
        ("betas_g=0.5", "optim.betas_g: expected 2 comma-separated values, got 1"),
        ("betas_g=0.5,1.5", "optim.betas_g: must be two numbers in"),
        ("g_batchnorm=maybe", "model.g_batchnorm: expected true or false"),
        ("loss=nope", "train.loss: unknown value 'nope'; choose one of"),
        ("arch=resnet", "model.arch: unknown value 'resnet'"),
        ("channels=2", "data.channels: must be 0, 1 or 3"),
        ("g_hidden=64,0", "model.g_hidden: must be positive widths"),
        ("steps", "expected key=value, got 'steps'"),
        ("=3", "expected key=value"),
    ],
)
def test_bad_overrides_name_the_key(text, message):
    with pytest.raises(ConfigError) as err:
        c.build(overrides=[text])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'nope'; choose one of mnist-mlp"):
        c.build("nope")


def test_toml_file_sets_preset_and_tables(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text(
        'preset = "mnist-dcgan"\n[train]\nsteps = 7\nd_steps = 3\n'
        "[optim]\nlr_d = 1e-3\nbetas_d = [0.0, 0.9]\n"
    )
    cfg = c.build(config_file=f, overrides=["steps=9"])
    assert cfg.preset == "mnist-dcgan" and cfg.model.arch == "dcgan"
    assert (cfg.train.steps, cfg.train.d_steps) == (9, 3)  # the command line wins
    assert cfg.optim.lr_d == 1e-3 and cfg.optim.betas_d == (0.0, 0.9)


def test_toml_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        c.build(config_file=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        c.build(config_file=bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("[train]\nsteps = 'many'\n")
    with pytest.raises(ConfigError, match=r"train\.steps: expected an integer"):
        c.build(config_file=typo)


def test_json_round_trip(tmp_path):
    cfg = c.build("mnist-dcgan", overrides=["lr_d=1e-3", "g_hidden=8,9"])
    f = tmp_path / "config.json"
    f.write_text(json.dumps(cfg.to_dict()))
    assert c.from_json(f) == cfg


def test_every_field_is_documented():
    text = c.describe_keys()
    for key in c.fields_of(c.Config()):
        if key != "preset":
            line = next(li for li in text.splitlines() if li.strip().startswith(key + "="))
            assert len(line.split("  ")[-1]) > 5, line


@given(st.text(max_size=20))
def test_parser_never_raises_anything_but_config_error(raw):
    """Whatever the user types as a value, the answer is the value or a ConfigError."""
    for key in (
        "train.steps",
        "optim.lr_d",
        "optim.betas_g",
        "model.g_hidden",
        "model.g_batchnorm",
        "train.loss",
    ):
        try:
            c.build(overrides=[f"{key}={raw}"])
        except ConfigError as e:
            assert key in str(e)
