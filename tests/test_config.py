"""The typed config: defaults, TOML presets, flag overrides, and the rules that refuse bad values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actbench.cli import app
from actbench.config import KEYS, RunConfig, load_config, make_config
from actbench.errors import UsageError

runner = CliRunner()

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


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "batch-size = 32",
            "unknown config key 'batch-size' (did you mean 'batch_size'; keys "
            "use underscores?); known keys: activations, ",
        ),
        ("activation = 'relu'", "unknown config key 'activation' (did you mean 'activations'?)"),
        ("colour = 1", "unknown config key 'colour'; known keys: activations, "),
        ("epochs = true", "p.toml's epochs must be an integer, got true"),
        ("hidden = [64, false]", "p.toml's hidden must be an integer or a list of them, got false"),
    ],
)
def test_a_preset_mistake_is_named_as_written_with_the_likely_key(tmp_path, line, message):
    preset = tmp_path / "p.toml"
    preset.write_text(line + "\n")
    with pytest.raises(UsageError) as caught:
        load_config(preset)
    assert message in str(caught.value)


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
        ("epochs = true", "epochs must be an integer, got true"),
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
    with given_by(flags={"lr", "batch_size"}, preset={"depth"}, preset_name="p.toml"):
        assert [setting(k) for k in ("lr", "depth", "hidden")] == ["--lr", "p.toml's depth",
                                                                   "--hidden"]  # fmt: skip
        with keys_only():  # a run's recorded settings, checked on their own
            assert [setting(k) for k in ("batch_size", "lr")] == ["batch_size", "lr"]
        assert setting("batch_size") == "--batch-size"
    assert setting("lr") == "lr"


@pytest.mark.parametrize(
    ("text", "overrides", "key", "value"),
    [
        ("lr = -1", {"lr": "1e-3"}, "lr", 1e-3),
        ('epochs = "ten"', {"epochs": 2}, "epochs", 2),
        ('optimizer = "rmsprop"', {"optimizer": "sgd"}, "optimizer", "sgd"),
        ("val = -5", {"val": 0}, "val", 0),
        ("depth = 0", {"depth": "3"}, "depth", 3),
        ("seed = [0, 0]", {"seed": "1,2"}, "seed", (1, 2)),
        ("subset = 5", {"subset": 100}, "subset", 100),  # smaller than one batch (64)
        ("momentum = 0.9", {"momentum": "0"}, "momentum", 0.0),  # Adam's: no momentum
    ],
)
def test_a_preset_s_bad_value_that_an_override_replaces_is_no_error(
    tmp_path, text, overrides, key, value
):
    preset = tmp_path / "p.toml"
    preset.write_text(text + "\n")
    with pytest.raises(UsageError, match=re.escape(f"{preset}'s {key}")):
        load_config(preset)  # on its own, named by its file
    assert getattr(load_config(preset, **overrides), key) == value  # the override wins


def test_a_preset_s_bad_value_overridden_by_a_flag_runs(mnist_dir, tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('lr = -1\nactivations = ["relu"]\nepochs = 1\nhidden = 8\nbatch_size = 16\n')
    results = tmp_path / "r"
    result = runner.invoke(app, ["run", "--config", str(preset), "--lr", "1e-3", "--workers",
                                 "1", "--data-dir", str(mnist_dir), "--results-dir",
                                 str(results)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = results.iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["config"]["lr"] == 1e-3


@pytest.mark.parametrize(
    ("text", "flags", "message"),
    [
        ("lr = -1", [], "p.toml's lr must be a positive finite number, got -1.0"),
        ("lr = 0.01", ["--lr", "-1"], "--lr must be a positive finite number, got -1.0"),
        ('epochs = "ten"', [], "p.toml's epochs must be an integer, got 'ten'"),
        (  # each source valid on its own; merged, not
            'optimizer = "sgd"\nmomentum = 0.9',
            ["--optimizer", "adam"],
            "p.toml's momentum 0.9 applies to SGD only, and --optimizer is adam, which ignores it: "
            "add --optimizer sgd or drop --momentum",
        ),
        (
            "subset = 2000",
            ["--val", "5000"],
            "--val 5000 leaves no training samples: the split is held out of p.toml's subset "
            "2000; use --val 1936 or less, or --subset 5064 or more",
        ),
        (
            "val = 5000",
            ["--subset", "2000"],
            "p.toml's val 5000 leaves no training samples: the split is held out of --subset "
            "2000; use --val 1936 or less, or --subset 5064 or more",
        ),
    ],
)
def test_the_merged_settings_are_checked_and_name_where_a_value_came_from(
    mnist_dir, tmp_path, monkeypatch, text, flags, message
):
    monkeypatch.chdir(tmp_path)  # the preset named as typed: p.toml
    Path("p.toml").write_text(text + "\n")
    result = runner.invoke(app, ["run", "--config", "p.toml", *flags, "--data-dir",
                                 str(mnist_dir), "--results-dir", "r"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"Error: {message}"]
    assert not Path("r").exists()
