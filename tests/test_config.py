"""The typed config: defaults, TOML presets, flag overrides, and the rules that refuse bad values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actbench.config import KEYS, RunConfig, load_config, make_config
from actbench.errors import UsageError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_defaults_are_the_classic_experiment():
    config = RunConfig()
    assert config.activations == ("relu", "sigmoid", "tanh", "leaky")
    assert (config.hidden, config.batch_size, config.epochs) == (128, 64, 10)
    assert (config.optimizer, config.lr) == ("adam", 1e-3)


def test_tutorial_preset_matches_the_brief():
    config = load_config(CONFIGS / "tutorial.toml")
    assert config.activations == ("relu", "sigmoid", "tanh", "leaky")
    assert (config.hidden, config.batch_size, config.epochs, config.lr) == (128, 64, 10, 1e-3)
    assert config.subset is None


def test_smoke_preset_uses_a_subset():
    config = load_config(CONFIGS / "smoke.toml")
    assert config.subset is not None and config.subset < 60_000


def test_flags_override_the_preset(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('epochs = 3\nactivations = ["tanh"]\nlr = 0.01\n')
    config = load_config(preset, epochs=5, hidden=None)
    assert config.epochs == 5  # flag wins
    assert config.activations == ("tanh",)  # preset kept
    assert config.lr == 0.01
    assert config.hidden == 128  # default kept


def test_comma_string_and_integer_lr_are_accepted():
    config = make_config({"activations": "relu, tanh", "lr": 1})
    assert config.activations == ("relu", "tanh")
    assert config.lr == 1.0 and isinstance(config.lr, float)


def test_paths_are_accepted_from_python(tmp_path):
    config = make_config({"data_dir": tmp_path, "results_dir": tmp_path / "r"})
    assert config.data_dir == str(tmp_path) and config.results_dir == str(tmp_path / "r")


def test_unknown_key_is_named(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text("epochs = 3\nlearning_rate = 0.1\n")
    with pytest.raises(UsageError, match=r"p.toml: unknown config key 'learning_rate'"):
        load_config(preset)


def test_nested_table_is_an_unknown_key(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text("[train]\nepochs = 3\n")
    with pytest.raises(UsageError, match="unknown config key 'train'"):
        load_config(preset)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('epochs = "ten"', "epochs must be an integer, got 'ten'"),
        ("epochs = 2.5", "epochs must be an integer, got 2.5"),
        ("epochs = true", "epochs must be an integer, got True"),
        ('lr = "fast"', "lr must be a number"),
        ("download = 1", "download must be true or false"),
        ("activations = 3", "activations must be a list of names"),
        ("activations = [1, 2]", "activations must be a list of names"),
        ("subset = 0", "subset must be a positive integer"),
    ],
)
def test_wrong_types_name_the_key(tmp_path, text, message):
    preset = tmp_path / "p.toml"
    preset.write_text(text + "\n")
    with pytest.raises(UsageError, match=message):
        load_config(preset)


def test_invalid_toml_is_reported(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text("epochs = = 3\n")
    with pytest.raises(UsageError, match="is not valid TOML"):
        load_config(preset)


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", 0, "epochs must be a positive integer"),
        ("batch_size", -1, "batch_size must be a positive integer"),
        ("hidden", 0, "hidden must be a positive integer"),
        ("eval_batch_size", 0, "eval_batch_size must be a positive integer"),
        ("lr", 0.0, "lr must be a positive finite number"),
        ("lr", float("nan"), "lr must be a positive finite number"),
        ("lr", float("inf"), "lr must be a positive finite number"),
        ("momentum", 1.5, "momentum must be in"),
        ("seed", -1, "seed must be a non-negative integer"),
        ("threads", -2, "threads must be 0"),
        ("optimizer", "rmsprop", "optimizer must be one of adam, sgd"),
        ("device", "tpu", "device must be one of auto, cpu, cuda, mps"),
        ("activations", (), "activations is empty"),
    ],
)
def test_bad_values_are_refused(key, value, message):
    with pytest.raises(UsageError, match=message):
        make_config({key: value})


def test_settings_round_trip_through_a_dict():
    config = make_config({"activations": ["gelu"], "subset": 100, "seed": 3})
    assert make_config(config.to_dict()) == config
    assert set(config.to_dict()) == set(KEYS)


def test_a_subset_smaller_than_one_batch_is_refused():
    message = "subset 5 is smaller than one batch (batch_size 64); use --batch-size 5 or less, "
    with pytest.raises(UsageError, match=re.escape(message + "or --subset 64 or more")):
        make_config({"subset": 5})
    assert make_config({"subset": 64}).subset == 64


@pytest.mark.parametrize(
    ("dataset", "batch", "more"),
    [("mnist", 70000, False), ("mnist", 60000, True), ("mnist1d", 4001, False),
     ("mnist1d", 4000, True), ("cifar10", 128, False)],
)  # fmt: skip
def test_a_subset_smaller_than_one_batch_is_told_a_fix_that_works(dataset, batch, more):
    """Never a --subset larger than the data set has (MNIST: 60,000 training samples;
    MNIST-1D: 4,000; CIFAR-10's are not known before it is read); a smaller batch always."""
    with pytest.raises(UsageError) as caught:
        make_config({"subset": 100, "batch_size": batch, "dataset": dataset})
    message = str(caught.value)
    assert message.startswith(f"subset 100 is smaller than one batch (batch_size {batch}); ")
    assert "use --batch-size 100 or less" in message
    assert (f"--subset {batch} or more" in message) == more


def test_a_setting_is_named_as_it_was_given():
    from actbench.names import given_by, keys_only, setting

    assert setting("batch_size") == "batch_size"  # a dict's key, in Python
    with given_by(flags={"lr", "batch_size"}, preset={"depth"}):
        assert [setting(k) for k in ("lr", "batch_size", "depth", "hidden")] == [
            "--lr", "--batch-size", "depth", "--hidden"  # a default: the flag changes it
        ]  # fmt: skip
        with keys_only():  # a preset checked on its own
            assert [setting(k) for k in ("batch_size", "lr")] == ["batch_size", "lr"]
        assert setting("batch_size") == "--batch-size"
    assert setting("lr") == "lr"
