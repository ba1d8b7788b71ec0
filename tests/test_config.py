import json

import pytest
from pydantic import BaseModel, ConfigDict, Field

import obliviate.config as config
from obliviate.config import (RunConfig, config_hash, config_to_dict, list_presets, load_config,
                              resolve_config_path)
from obliviate.errors import ObliviateError
from obliviate.registry import Registry

REAL_REGISTRY = config._method_registry


class DummyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = Field(1e-5, gt=0, description="learning rate")
    steps: int = Field(10, ge=1, description="optimizer steps")


class DummyDiffConfig(DummyConfig):
    retain_weight: float = Field(1.0, ge=0, description="retain term weight")


@pytest.fixture(autouse=True)
def methods(monkeypatch):
    """A fresh registry of dummy methods, so these tests never import obliviate.methods."""
    reg = Registry("method")
    reg.register("gradient_ascent")(type("GA", (), {"config_class": DummyConfig}))
    reg.register("gradient_difference")(type("GD", (), {"config_class": DummyDiffConfig}))
    reg.register("npo")(type("NPO", (), {"config_class": DummyConfig}))
    monkeypatch.setattr(config, "_method_registry", lambda: reg)
    return reg


@pytest.fixture
def yaml_file(tmp_path):
    def write(text: str, name: str = "run.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


def user_error(*args) -> str:
    with pytest.raises(ObliviateError) as info:
        load_config(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- precedence -----------------------------------------------------------------------------

def test_defaults_without_file():
    cfg = load_config(None, [])
    assert cfg == RunConfig()
    assert (cfg.name, cfg.seed, cfg.output_dir, cfg.threads) == ("tiny", 0, "runs", None)
    assert cfg.methods == ["gradient_ascent", "gradient_difference"] and cfg.method_args == {}
    assert cfg.train.lr == 3e-3


def test_file_overrides_defaults_and_keeps_the_rest(yaml_file):
    cfg = load_config(yaml_file("name: mine\ntrain: {lr: 0.01}\ndata: {people: 30}\n"), [])
    assert (cfg.name, cfg.train.lr, cfg.data.people) == ("mine", 0.01, 30)
    assert cfg.train.epochs == RunConfig().train.epochs and cfg.data.forget_fraction == 0.1


def test_set_overrides_file(yaml_file):
    path = yaml_file("train: {lr: 0.01, epochs: 5}\n")
    cfg = load_config(path, ["train.lr=0.5", "seed=3"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.seed) == (0.5, 5, 3)


def test_later_set_wins():
    assert load_config(None, ["train.lr=0.1", "train.lr=0.2"]).train.lr == 0.2


def test_empty_file_means_defaults(yaml_file):
    assert load_config(yaml_file(""), []) == RunConfig()


# --- override values ------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["methods=[npo, gradient_ascent]", "methods=npo,gradient_ascent",
                                  "methods=npo, gradient_ascent"])
def test_list_overrides(text):
    assert load_config(None, [text]).methods == ["npo", "gradient_ascent"]


def test_single_method_and_empty_list():
    assert load_config(None, ["methods=npo"]).methods == ["npo"]
    assert load_config(None, ["methods=[]"]).methods == []


def test_nested_overrides_and_yaml_typed_values():
    cfg = load_config(None, ["data.forget_fraction=0.05", "train.lr=1e-3", "threads=2",
                             "method_args.gradient_difference.lr=1e-4",
                             "method_args.gradient_difference.retain_weight=2"])
    assert cfg.data.forget_fraction == 0.05
    assert cfg.train.lr == 1e-3  # PyYAML reads "1e-3" as a string; pydantic coerces it
    assert cfg.threads == 2
    assert cfg.method_args == {"gradient_difference": {"lr": 1e-4, "retain_weight": 2.0}}
    assert isinstance(cfg.method_args["gradient_difference"]["lr"], float)


def test_override_merges_into_file_sections(yaml_file):
    path = yaml_file("method_args:\n  gradient_difference: {retain_weight: 3}\n")
    cfg = load_config(path, ["method_args.gradient_difference.steps=7"])
    assert cfg.method_args == {"gradient_difference": {"retain_weight": 3.0, "steps": 7}}


def test_method_config_fills_defaults():
    cfg = load_config(None, ["method_args.gradient_difference.lr=1e-4"])
    gd = cfg.method_config("gradient_difference")
    assert isinstance(gd, DummyDiffConfig)
    assert (gd.lr, gd.steps, gd.retain_weight) == (1e-4, 10, 1.0)
    assert cfg.method_config("gradient_ascent") == DummyConfig()


def test_python_api_accepts_comma_string():
    assert RunConfig(methods="npo,gradient_ascent").methods == ["npo", "gradient_ascent"]


# --- user errors ----------------------------------------------------------------------------

def test_missing_file(tmp_path):
    msg = user_error(str(tmp_path / "x.yaml"), [])
    assert "x.yaml' not found" in msg and "micro" in msg and "tiny" in msg


def test_missing_file_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "config file 'x.yaml' not found" in user_error("x.yaml", [])


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just words\n", "str"), ("3\n", "int")])
def test_yaml_not_a_mapping(yaml_file, text, kind):
    msg = user_error(yaml_file(text), [])
    assert "must be a mapping" in msg and f"got a {kind}" in msg


def test_yaml_syntax_error(yaml_file):
    msg = user_error(yaml_file("train: {lr: 0.1\nname: x\n"), [])
    assert "is not valid YAML" in msg and "line" in msg


@pytest.mark.parametrize("text", ["trainlr", "=3", "train.=3", ".lr=3"])
def test_malformed_set(text):
    assert f"malformed --set '{text}': expected key=value, e.g. train.lr=0.001" in user_error(None, [text])


def test_set_value_that_is_not_yaml():
    assert "malformed --set 'methods=[npo'" in user_error(None, ["methods=[npo"])


def test_set_through_a_value(yaml_file):
    msg = user_error(yaml_file("train: {lr: 0.1}\n"), ["train.lr.x=1"])
    assert "'train.lr' is a value, not a section" in msg


@pytest.mark.parametrize("overrides, expected", [
    (["train.lrr=1"], "unknown config key 'train.lrr'; did you mean 'train.lr'?"),
    (["trian.lr=1"], "unknown config key 'trian'; did you mean 'train'?"),
    (["data.forget_fractoin=0.1"], "unknown config key 'data.forget_fractoin'; did you mean 'data.forget_fraction'?"),
    (["model.hiden_size=8"], "did you mean 'model.hidden_size'?"),
    (["method_args.gradient_difference.retain_wieght=2"],
     "unknown config key 'method_args.gradient_difference.retain_wieght'; "
     "did you mean 'method_args.gradient_difference.retain_weight'?"),
])
def test_unknown_keys_with_suggestion(overrides, expected):
    assert expected in user_error(None, overrides)


def test_unknown_key_in_file(yaml_file):
    assert "did you mean 'train.epochs'?" in user_error(yaml_file("train: {epoch: 3}\n"), [])


def test_unknown_key_without_suggestion_lists_known():
    msg = user_error(None, ["train.zzz=1"])
    assert "unknown config key 'train.zzz'; known keys under 'train': epochs, lr" in msg
    assert "known keys: name, seed" in user_error(None, ["zzz=1"])


def test_validation_errors_are_one_line():
    msg = user_error(None, ["data.forget_fraction=1.5", "train.epochs=abc"])
    assert msg.startswith("invalid config: data.forget_fraction: forget_fraction must be in (0, 1), got 1.5")
    assert "; train.epochs: Input should be a valid integer" in msg and "got 'abc'" in msg


def test_validation_error_in_section_type():
    assert "invalid config: train: " in user_error(None, ["train=5"])


def test_bad_run_name():
    assert "name must be a plain directory name" in user_error(None, ["name=../elsewhere"])


def test_unknown_method_suggests():
    msg = user_error(None, ["methods=[gradient_acent]"])
    assert "unknown method 'gradient_acent'; did you mean 'gradient_ascent'? known: " \
           "gradient_ascent, gradient_difference, npo" in msg


def test_unknown_method_in_method_args():
    assert "unknown method 'np'" in user_error(None, ["method_args.np.lr=1"])


def test_method_listed_twice():
    assert "method 'npo' is listed twice" in user_error(None, ["methods=[npo, npo]"])


def test_invalid_method_arg_value():
    msg = user_error(None, ["method_args.npo.lr=-1"])
    assert msg.startswith("invalid config: method_args.npo.lr: Input should be greater than 0")


def test_method_args_for_unlisted_method_is_allowed():
    # a preset may configure methods a --set later drops from the list
    cfg = load_config(None, ["methods=[npo]", "method_args.gradient_difference.lr=0.1"])
    assert cfg.methods == ["npo"] and cfg.method_args["gradient_difference"] == {"lr": 0.1}


# --- presets --------------------------------------------------------------------------------

def test_presets_listed():
    assert {"tiny", "micro"} <= set(list_presets())


@pytest.mark.parametrize("name", ["tiny", "micro", "micro.yaml"])
def test_preset_resolves_to_packaged_file(name):
    path = resolve_config_path(name)
    assert path.is_file() and path.parent.name == "configs" and path.stem == name.removesuffix(".yaml")


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_every_preset_loads(name, monkeypatch):
    monkeypatch.setattr(config, "_method_registry", REAL_REGISTRY)  # presets name real methods
    assert load_config(name, []).name == name


def test_micro_preset_values():
    cfg = load_config("micro", ["train.lr=0.01"])
    assert (cfg.data.people, cfg.data.holdout_people, cfg.data.forget_fraction, cfg.data.world_sums) == (20, 20, 0.2, 10)
    m = cfg.model
    assert (m.hidden_size, m.intermediate_size, m.layers, m.heads, m.vocab_size) == (64, 256, 2, 2, 1024)
    assert (cfg.train.epochs, cfg.train.lr) == (40, 0.01)


def test_existing_file_wins_over_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "micro").write_text("name: local\n")
    assert resolve_config_path("micro").resolve() == (tmp_path / "micro").resolve()
    assert load_config("micro", []).name == "local"


def test_unknown_preset_lists_presets():
    with pytest.raises(ObliviateError) as info:
        resolve_config_path("nope")
    assert "config file 'nope' not found" in str(info.value) and all(p in str(info.value) for p in ("micro", "tiny"))


# --- serialisation and hashing --------------------------------------------------------------

def test_config_to_dict_round_trips():
    cfg = load_config("micro", ["method_args.npo.lr=1e-4", "threads=1"])
    d = config_to_dict(cfg)
    assert json.loads(json.dumps(d)) == d
    assert d["data"]["people"] == 20 and d["method_args"]["npo"] == {"lr": 1e-4}
    assert RunConfig(**d) == cfg


def test_config_hash():
    a = load_config("micro", [])
    h = config_hash(a)
    assert len(h) == 12 and all(c in "0123456789abcdef" for c in h)
    assert config_hash(load_config("micro", [])) == h
    assert config_hash(config_to_dict(a)) == h
    assert config_hash(load_config("micro", ["seed=1"])) != h
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"cfg": a.train}) == config_hash({"cfg": a.train.model_dump()})
