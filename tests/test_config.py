import json
import typing

import pytest
from hypothesis import given, settings
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


@pytest.mark.slow  # 100 examples x 6 keys (about 3 s)
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


def _text(value):
    """How a user writes ``value`` on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _valid_value(key: str, tp) -> st.SearchStrategy:
    """Values of type ``tp`` that pass the checks of ``key``."""
    choices = c.CHOICES.get(key)
    if choices is not None:
        return st.sampled_from(choices)
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if args[1] is Ellipsis:
            return st.tuples(*[st.integers(1, 512)] * 2) | st.tuples(st.integers(1, 512))
        return st.tuples(*[st.floats(0, 0.999)] * len(args))
    base = {
        bool: st.booleans(),
        int: st.integers(0, 10**6),
        float: st.floats(1e-8, 1.0, allow_subnormal=False),
        str: st.sampled_from(["cpu", "x", ""]),
    }[tp]
    return base.filter(lambda v: _passes(key, v))


def _passes(key: str, value) -> bool:
    try:
        c._check(key, value)
    except ConfigError:
        return False
    return True


FIELDS = {k: t for k, t in c.fields_of(c.Config()).items() if k != "preset"}


@pytest.mark.slow  # 60 examples, each reading config.json back (about 20 s)
@settings(deadline=None, max_examples=60)
@given(data=st.data(), key=st.sampled_from(sorted(FIELDS)))
def test_every_valid_value_survives_the_command_line_toml_and_json(data, key, tmp_path_factory):
    """A value written as text, as TOML or read back from config.json is the same value."""
    value = data.draw(_valid_value(key, FIELDS[key]))
    section, name = key.split(".")
    from_cli = c.build(overrides=[f"{key}={_text(value)}"])
    assert getattr(getattr(from_cli, section), name) == value
    toml_value = json.dumps(list(value) if isinstance(value, tuple) else value)
    f = tmp_path_factory.mktemp("cfg") / "run.toml"
    f.write_text(f"[{section}]\n{name} = {toml_value}\n")
    assert c.build(config_file=f) == from_cli
    j = f.with_name("config.json")
    j.write_text(json.dumps(from_cli.to_dict()))
    assert c.from_json(j) == from_cli
    bare = [k for k in FIELDS if k.split(".")[1] == name]
    if len(bare) == 1:  # an unambiguous leaf works alone
        assert c.build(overrides=[f"{name}={_text(value)}"]) == from_cli


@settings(deadline=None, max_examples=60)
@given(key=st.sampled_from(sorted(FIELDS)), raw=st.text(max_size=12))
def test_any_text_for_any_key_gives_a_value_or_one_line_naming_the_key(key, raw):
    try:
        cfg = c.build(overrides=[f"{key}={raw}"])
    except ConfigError as e:
        assert str(e).startswith(key) and "\n" not in str(e)
        return
    section, name = key.split(".")
    c._check(key, getattr(getattr(cfg, section), name))  # what was accepted passes its check


@settings(deadline=None, max_examples=60)
@given(text=st.text(max_size=30))
def test_any_override_text_gives_a_config_or_a_config_error(text):
    try:
        c.build(overrides=[text])
    except ConfigError as e:
        assert "\n" not in str(e)


@settings(deadline=None, max_examples=60)
@given(
    table=st.dictionaries(
        st.sampled_from([*c.SECTIONS, "preset", "other"]),
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=4), max_size=3)
        | st.integers()
        | st.text(max_size=5),
        max_size=3,
    )
)
def test_any_json_config_gives_a_config_or_a_config_error(table, tmp_path_factory):
    f = tmp_path_factory.mktemp("json") / "config.json"
    f.write_text(json.dumps(table))
    try:
        c.from_json(f)
    except ConfigError as e:
        assert "\n" not in str(e)
