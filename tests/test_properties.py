"""Property-based tests: the CSV round trip and config parsing hold for any input, not examples."""

from __future__ import annotations

import math
import tempfile
from dataclasses import astuple
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actbench.config import GRID_KEYS, KEYS, RunConfig, load_config, make_config
from actbench.errors import UsageError
from actbench.results import SETTINGS, RunWriter, read_metrics
from actbench.train import EpochResult

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

labels = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), min_size=1
)
losses = st.floats(allow_nan=True, allow_infinity=True, width=64)
fractions = st.floats(min_value=0, max_value=1)
rows = st.builds(
    EpochResult,
    activation=labels,
    seed=st.integers(0, 2**31),
    epoch=st.integers(1, 10_000),
    train_loss=losses,
    train_accuracy=fractions,
    test_loss=losses,
    test_accuracy=fractions,
    epoch_seconds=st.floats(min_value=0, max_value=1e6),
    status=st.sampled_from(["ok", "diverged"]),
)


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b and type(a) is type(b)


@PROPERTY
@given(st.lists(rows, max_size=12))
def test_csv_round_trip_is_exact(written):
    with tempfile.TemporaryDirectory() as folder:
        order = list(dict.fromkeys(r.activation for r in written))
        writer = RunWriter(Path(folder), order, {})
        writer.add(written)
        writer.finish()
        frame = read_metrics(Path(folder) / "metrics.csv").drop(columns=list(SETTINGS))
    back = [EpochResult(**record) for record in frame.to_dict("records")]
    assert len(back) == len(written)
    expected = sorted(written, key=lambda r: (r.seed, r.epoch, order.index(r.activation)))
    for got, want in zip(back, expected, strict=True):
        for x, y in zip(astuple(got), astuple(want), strict=True):
            assert same(x if not hasattr(x, "item") else x.item(), y), (got, want)


# Values of the right type for each key (some invalid, e.g. negative), and of a wrong type.
VALUES = {
    "activations": st.lists(st.sampled_from(["relu", "tanh", "GELU", "leaky:0.2", ""]), max_size=3),
    "hidden": st.integers(-3, 500),
    "depth": st.integers(-1, 40),
    "init": st.sampled_from(["torch", "Kaiming", "auto", "he"]),
    "epochs": st.integers(-3, 50),
    "batch_size": st.integers(-3, 512),
    "optimizer": st.sampled_from(["adam", "SGD", "rmsprop"]),
    "lr": st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2, 2),
    "momentum": st.floats(-1, 2),
    "seed": st.integers(-3, 2**40) | st.lists(st.integers(-1, 5), max_size=4),
    "seeds": st.integers(-1, 6),
    "baseline": st.sampled_from(["relu", "tanh", "RELU"]),
    "subset": st.integers(-3, 70_000),
    "val": st.integers(-3, 70_000),
    "eval_batch_size": st.integers(-3, 20_000),
    "dataset": st.sampled_from(["mnist", "MNIST1D", "cifar10", "svhn"]),
    "data_dir": st.text(min_size=1, max_size=20),
    "download": st.booleans(),
    "results_dir": st.text(min_size=1, max_size=20),
    "device": st.sampled_from(["auto", "cpu", "CUDA", "tpu"]),
    "workers": st.integers(-2, 8),
    "threads": st.integers(-2, 8),
    "backend": st.sampled_from(["local", "RAY", "dask"]),
    "address": st.sampled_from(["auto", "head:6379", "ray://head:10001", " "]),
}
assert set(VALUES) == set(KEYS)
WRONG = st.one_of(
    st.booleans(), st.text(max_size=5), st.floats(), st.lists(st.integers(), max_size=2)
)
settings_dicts = st.fixed_dictionaries({}, optional=VALUES)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):  # a TOML basic string: escape quotes, backslashes, controls
        return (
            '"'
            + "".join(
                f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c
                for c in value
            )
            + '"'
        )

    return str(value)


def outcome(make, preset=None):
    """The config `make` returns, or its error's message; a setting `preset` (a file) gave
    is named by it there ("p.toml's lr"), which is left out to compare with Python's."""
    try:
        return make()
    except UsageError as err:
        message = str(err) if preset is None else str(err).replace(f"{preset}'s ", "")
        return ("error", message.split(": ", 1)[-1] if message.startswith("/") else message)


@PROPERTY
@given(settings_dicts)
def test_a_preset_means_what_the_same_settings_mean_in_python(values):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "preset.toml"
        path.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in values.items()))
        from_toml = outcome(lambda: load_config(path), path)
    from_python = outcome(lambda: make_config(values))
    assert from_toml == from_python
    if isinstance(from_python, RunConfig):  # a valid config survives its own JSON form
        assert make_config(from_python.to_dict()) == from_python


@PROPERTY
@given(settings_dicts, settings_dicts)
def test_flags_override_a_preset_key_by_key(preset, flags):
    """The merged settings are checked, not the preset alone: a preset's invalid value that
    a flag replaces is no error, and what is left invalid is refused as in Python."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "preset.toml"
        path.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in preset.items()))
        layered = outcome(lambda: load_config(path, **flags), path)
    assert layered == outcome(lambda: make_config({**preset, **flags}))


@PROPERTY
@given(st.sampled_from(sorted(KEYS)), WRONG)
def test_a_value_of_the_wrong_type_is_refused_naming_its_key(key, value):
    kind_ok = {
        "activations": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "lr": isinstance(value, float) and not isinstance(value, bool),
        "momentum": isinstance(value, float) and not isinstance(value, bool),
        "download": isinstance(value, bool),
        "data_dir": isinstance(value, str),
        "results_dir": isinstance(value, str),
        "optimizer": isinstance(value, str),
        "device": isinstance(value, str),
        "baseline": isinstance(value, str),
        "seed": isinstance(value, list) and all(type(v) is int for v in value),
    }.get(key, False)
    if kind_ok or (key in ("activations", "seed") and isinstance(value, str)):
        return
    if key in GRID_KEYS and isinstance(value, list | str):
        # a study's list (or "a,b" from a flag): refused naming the key, or each value valid
        try:
            config = make_config({key: value})
        except UsageError as err:
            assert key in str(err)
        else:
            assert all(isinstance(p, RunConfig) for p in config.points())
        return
    with pytest.raises(UsageError, match=key):
        make_config({key: value})
