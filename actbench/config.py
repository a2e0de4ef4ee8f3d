"""The one typed run configuration, its TOML presets and the rules that validate both."""

from __future__ import annotations

import difflib
import itertools
import math
import os
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from actbench import datasets
from actbench.datasets import NAMES as DATASETS
from actbench.errors import UsageError
from actbench.names import flag, from_a_preset, from_preset, setting

OPTIMIZERS = ("adam", "sgd")
# Settings a study may give as lists: every combination of their values is one configuration.
# `epochs` stays one value for the whole study; activations and seeds are the models of each.
GRID_ORDER = ("dataset", "depth", "hidden", "lr", "optimizer", "momentum", "batch_size", "init")
DEVICES = ("auto", "cpu", "cuda", "mps")
INITS = ("torch", "kaiming", "xavier", "lecun", "auto")  # see actbench.init
MAX_DEPTH = 32
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one `actbench run`; presets and flags only override these defaults."""

    activations: tuple[str, ...] = ("relu", "sigmoid", "tanh", "leaky")  # the classic four
    hidden: int | tuple[int, ...] = 128  # width H of every hidden layer: 784 -> H -> H -> 10
    depth: int | tuple[int, ...] = 2  # hidden layers of width H, 1 to MAX_DEPTH (2: classic)
    init: str | tuple[str, ...] = "torch"  # how the weights start: torch (nn.Linear's
    # default), kaiming, xavier, lecun, or auto (each activation's recommended scheme)
    epochs: int = 10  # full passes over the training data
    batch_size: int | tuple[int, ...] = 64  # training mini-batch size
    optimizer: str | tuple[str, ...] = "adam"  # "adam" or "sgd"
    lr: float | tuple[float, ...] = 1e-3  # learning rate
    momentum: float | tuple[float, ...] = 0.0  # SGD momentum (ignored by Adam)
    seed: int | tuple[int, ...] = 0  # the first seed, or a list of seeds
    seeds: int = 1  # how many seeds from `seed` on: seed, seed+1, ... (one model each)
    baseline: str | None = None  # the activation others are compared with; None = the first
    subset: int | None = None  # train on this many samples (test on the same fraction); None = all
    val: int = 0  # hold this many training samples out as a validation split; 0 = none (classic)
    eval_batch_size: int = 1000  # batch size of the test and validation passes (same results)
    dataset: str | tuple[str, ...] = "mnist"  # mnist, fashion-mnist, kmnist, cifar10, mnist1d
    data_dir: str = "data"  # folder holding (or receiving) the data sets' files
    download: bool = True  # download a data set's files when they are missing
    results_dir: str = "results"  # each run writes a new folder under this one
    device: str = "auto"  # "auto", "cpu", "cuda" or "mps"
    workers: int = 0  # processes that share the models of a CPU run; 0 = one per core
    threads: int = 0  # CPU threads per process; 0 = one (more gives up bit-identical models)
    backend: str = "local"  # "local": processes on this machine; "ray": tasks on a Ray cluster
    address: str | None = None  # the Ray cluster ("auto", "host:port", "ray://host:port");
    # None = a Ray on this machine (started if none runs). Neither changes the results.

    def __post_init__(self) -> None:
        if self.is_grid:
            _check_grid(self)
        else:
            _check_values(self)

    @property
    def grid(self) -> dict[str, tuple[Any, ...]]:
        """The settings given as lists of two or more values, in `GRID_ORDER`."""
        return {
            key: getattr(self, key) for key in GRID_KEYS if isinstance(getattr(self, key), tuple)
        }

    @property
    def varying(self) -> tuple[str, ...]:
        """The settings in which a study's configurations differ, in `GRID_ORDER`: the lists,
        and momentum where SGD's configurations have one and Adam's do not."""
        keys = [key for key in GRID_KEYS if key in self.grid]
        if "optimizer" in keys and "momentum" not in keys and self.momentum:
            keys.insert(keys.index("optimizer") + 1, "momentum")
        return tuple(keys)

    @property
    def is_grid(self) -> bool:
        """Whether this is a study: some setting lists several values."""
        return bool(self.grid)

    def points(self) -> list[RunConfig]:
        """Every configuration of the study, each a RunConfig with one value per setting.

        The Cartesian product of the listed values, the first setting of `GRID_ORDER` varying
        slowest. Under Adam a listed momentum does not apply: Adam's configurations take
        momentum 0 and appear once. A config that is not a grid is its only configuration.
        """
        grid = self.grid
        if not grid:
            return [self]
        seen: dict[tuple[Any, ...], RunConfig] = {}
        for values in itertools.product(*grid.values()):
            point = dict(zip(grid, values, strict=True))
            if point.get("optimizer", self.optimizer) == "adam":
                point["momentum"] = 0.0
            key = tuple(point.get(k, getattr(self, k)) for k in GRID_KEYS)
            if key in seen:
                continue
            try:
                seen[key] = replace(self, **point)
            except UsageError as err:  # each configuration is checked as one run would be
                where = ", ".join(f"{k} {point[k]}" for k in grid)
                raise UsageError(f"{err} (in the configuration {where})") from None
        return list(seen.values())

    @property
    def seed_list(self) -> list[int]:
        """Every seed of the run: each seeds the weights and batch order of one model per activation."""
        if isinstance(self.seed, tuple):
            return list(self.seed)
        return list(range(self.seed, self.seed + self.seeds))

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready settings that `make_config` reads back to this config.

        With a list of seeds, `seeds` (a count from one first seed) does not apply and is left out.
        """
        data = asdict(self)
        data["activations"] = list(self.activations)
        for key, values in self.grid.items():
            data[key] = list(values)
        if isinstance(self.seed, tuple):
            data["seed"] = list(self.seed)
            del data["seeds"]
        return data


# The accepted TOML/Python types of each key, named the way a user reads them.
_KINDS: dict[str, tuple[str, tuple[type, ...]]] = {
    "activations": ("a list of names", (list, tuple, str)),
    "hidden": ("an integer", (int,)),
    "depth": ("an integer", (int,)),
    "init": ("a string", (str,)),
    "epochs": ("an integer", (int,)),
    "batch_size": ("an integer", (int,)),
    "optimizer": ("a string", (str,)),
    "lr": ("a number", (int, float)),
    "momentum": ("a number", (int, float)),
    "seed": ("an integer or a list of integers", (int, list, tuple)),
    "seeds": ("an integer", (int,)),
    "baseline": ("an activation name", (str,)),
    "subset": ("an integer", (int,)),
    "val": ("an integer", (int,)),
    "eval_batch_size": ("an integer", (int,)),
    "dataset": ("a data set name", (str,)),
    "data_dir": ("a string", (str,)),
    "download": ("true or false", (bool,)),
    "results_dir": ("a string", (str,)),
    "device": ("a string", (str,)),
    "workers": ("an integer", (int,)),
    "threads": ("an integer", (int,)),
    "backend": ("a string", (str,)),
    "address": ("a string", (str,)),
}
KEYS = tuple(f.name for f in fields(RunConfig))
assert set(_KINDS) == set(KEYS), "every config key needs a type rule"
GRID_KEYS = tuple(k for k in GRID_ORDER if k in KEYS)


def _check_grid(cfg: RunConfig) -> None:
    """A study's lists: each names its values once, and every configuration is valid."""
    for key, values in cfg.grid.items():
        kind, types = _KINDS[key]
        for value in values:
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise UsageError(
                    f"{setting(key)} must be {kind} or a list of them, got {_shown(key, value)}"
                )
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise UsageError(
                f"{setting(key)} lists {repeated[0]!r} twice ({_listed(values)}); give each value "
                "once"
            )
    grid = cfg.grid
    momentum = grid.get("momentum", (cfg.momentum,))
    optimizers = grid.get("optimizer", (cfg.optimizer,))
    if any(momentum) and "sgd" not in optimizers:
        raise UsageError(
            f"{setting('momentum')} {_listed(momentum)} applies to SGD only, and no "
            "configuration uses --optimizer sgd: add sgd to --optimizer or drop --momentum"
        )
    cfg.points()  # each configuration checked as one run would be


def _listed(values: tuple[Any, ...]) -> str:
    return ",".join(str(v) for v in values)


def _positive_int(cfg: RunConfig, key: str) -> None:
    value = getattr(cfg, key)
    if value <= 0:
        raise UsageError(f"{setting(key)} must be a positive integer, got {value}")


def _check_values(cfg: RunConfig) -> None:
    for key in KEYS:
        value = getattr(cfg, key)
        kind, types = _KINDS[key]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if key in ("subset", "baseline", "address") and value is None:
            ok = True
        if key == "seed" and isinstance(value, list | tuple):
            ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if not ok:
            raise UsageError(f"{setting(key)} must be {kind}, got {_shown(key, value)}")
    for key in ("hidden", "epochs", "batch_size", "eval_batch_size"):
        _positive_int(cfg, key)
    if cfg.subset is not None:
        _positive_int(cfg, "subset")
        if cfg.subset < cfg.batch_size:
            fix = f"use {flag('batch_size')} {cfg.subset} or less"
            most = training_samples(cfg.dataset)
            if most is not None and cfg.batch_size <= most:  # a subset that large exists
                fix += f", or {flag('subset')} {cfg.batch_size} or more"
            raise UsageError(
                f"{setting('subset')} {cfg.subset} is smaller than one batch "
                f"({setting('batch_size')} {cfg.batch_size}); {fix}"
            )
    _check_split(cfg)
    _positive_int(cfg, "seeds")
    seeds = cfg.seed_list
    if not seeds:
        raise UsageError(
            f"{setting('seed')} is an empty list: give at least one seed, e.g. --seed 0,1,2"
        )
    if any(s < 0 for s in seeds):
        raise UsageError(f"{setting('seed')} must be a non-negative integer, got {min(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"{setting('seed')} lists a seed twice: {', '.join(map(str, seeds))}")
    if isinstance(cfg.seed, tuple) and cfg.seeds not in (1, len(seeds)):
        raise UsageError("give either a list of seeds (--seed 0,1,2) or a count (--seeds N)")
    if cfg.val < 0:
        raise UsageError(
            f"{setting('val')} must be 0 (no validation split) or a positive integer, got {cfg.val}"
        )
    for key in ("workers", "threads"):
        if getattr(cfg, key) < 0:
            raise UsageError(
                f"{setting(key)} must be 0 (automatic) or a positive integer, "
                f"got {getattr(cfg, key)}"
            )
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise UsageError(f"{setting('lr')} must be a positive finite number, got {cfg.lr}")
    if not (math.isfinite(cfg.momentum) and 0 <= cfg.momentum < 1):
        raise UsageError(f"{setting('momentum')} must be in [0, 1), got {cfg.momentum}")
    if cfg.optimizer not in OPTIMIZERS:
        raise UsageError(
            f"{setting('optimizer')} must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}"
        )
    if cfg.momentum and cfg.optimizer != "sgd":
        raise UsageError(
            f"{setting('momentum')} {cfg.momentum:g} applies to SGD only, and "
            f"{setting('optimizer')} is {cfg.optimizer}, which ignores it: add --optimizer sgd "
            "or drop --momentum"
        )
    if cfg.dataset not in DATASETS:
        raise UsageError(
            f"{setting('dataset')} must be one of {', '.join(DATASETS)}, got {cfg.dataset!r}"
        )
    if not 1 <= cfg.depth <= MAX_DEPTH:
        raise UsageError(
            f"{setting('depth')} must be from 1 to {MAX_DEPTH} hidden layers, got {cfg.depth}"
        )
    if cfg.init not in INITS:
        raise UsageError(f"{setting('init')} must be one of {', '.join(INITS)}, got {cfg.init!r}")
    if cfg.device not in DEVICES:
        raise UsageError(
            f"{setting('device')} must be one of {', '.join(DEVICES)}, got {cfg.device!r}"
        )
    if cfg.backend not in BACKENDS:
        raise UsageError(
            f"{setting('backend')} must be one of {', '.join(BACKENDS)}, got {cfg.backend!r}"
        )
    if cfg.address is not None and cfg.backend != "ray":
        raise UsageError(
            f"{setting('address')} {cfg.address} is a Ray cluster's, and {setting('backend')} "
            f"is {cfg.backend}: add --backend ray or drop --address"
        )
    if cfg.address is not None and not cfg.address.strip():
        raise UsageError(f"{setting('address')} is empty: give auto, host:port or ray://host:port")
    if not cfg.activations:
        raise UsageError(
            f"{setting('activations')} is empty: name at least one, e.g. --activations relu,tanh"
        )
    if not all(isinstance(a, str) for a in cfg.activations):
        raise UsageError(f"{setting('activations')} must be a list of names")


def _check_split(cfg: RunConfig) -> None:
    """The validation split leaves at least one batch of training samples.

    The split (`val`) is held out of the training samples a run has: the subset where one is
    given, else the data set's (where its table says how many; otherwise `data.prepare`
    checks it once the data is read).
    """
    most = training_samples(cfg.dataset)
    total = cfg.subset if cfg.subset is not None else most
    if cfg.val <= 0 or total is None or (most is not None and total > most):
        return  # a subset larger than the data set is refused once the data is read
    left, batch = total - cfg.val, cfg.batch_size
    if left >= batch:
        return
    fixes = []
    if total > batch:
        fixes.append(f"{flag('val')} {total - batch} or less")
    if cfg.subset is not None and (most is None or cfg.val + batch <= most):
        fixes.append(f"{flag('subset')} {cfg.val + batch} or more")
    if left > 0:
        fixes.append(f"{flag('batch_size')} {left} or less")
    if fixes:  # each option ends in 'or less' / 'or more': a comma before the last 'or'
        fix = "use " + (f"{', '.join(fixes[:-1])}, or " if len(fixes) > 1 else "") + fixes[-1]
    else:
        fix = (
            f"hold out fewer samples ({flag('val')}) and lower {flag('batch_size')} to what is left"
        )
    if cfg.subset is not None:
        source = f"{setting('subset')} {cfg.subset}"
    else:
        source = f"{datasets.title(cfg.dataset)}'s {total}"
    if left <= 0:
        leaves = "no training samples"
    else:
        samples = f"{left} training sample{'s' * (left != 1)}"
        leaves = f"{samples}, fewer than one batch ({setting('batch_size')} {batch})"
    raise UsageError(
        f"{setting('val')} {cfg.val} leaves {leaves}: the split is held out of {source}; {fix}"
    )


def training_samples(dataset: str) -> int | None:
    """The training samples of `dataset` as published, where its table says; None otherwise."""
    table = datasets.spec(dataset) if dataset in DATASETS else None
    if isinstance(table, datasets.DataSet):
        return table.file("train_images").count
    if isinstance(table, datasets.GeneratedSet):
        return table.train
    return None


def split_names(text: str) -> tuple[str, ...]:
    """'relu, tanh' -> ('relu', 'tanh'); empty items are kept so they can be reported."""
    return tuple(part.strip() for part in text.split(","))


def _parse_seeds(text: str) -> tuple[int, ...]:
    """'3' -> (3,), '0, 1,2' -> (0, 1, 2); anything else is a usage error."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(
            f"{setting('seed')} must be an integer or a comma-separated list such as 0,1,2, "
            f"got {text!r}"
        ) from None


_NUMBERS = {"lr": float, "momentum": float}


def _grid_value(key: str, value: Any) -> Any:
    """A grid setting as given (a value, 'a,b' from a flag, or a TOML list) in its typed form.

    One value stays a scalar; several become a tuple. Integers of `lr` and `momentum` become
    floats; names are lowercased. Values that do not parse are usage errors naming the key.
    """
    kind = _KINDS[key][1]
    if isinstance(value, str) and (int in kind or float in kind):
        parse = _NUMBERS.get(key, int)
        items = []
        for part in value.split(","):
            try:
                items.append(parse(part.strip()))
            except ValueError:
                got = f"an empty item in {value!r}" if not part.strip() else repr(part.strip())
                raise UsageError(
                    f"{setting(key)} must be {_KINDS[key][0]} or a comma-separated list of them, "
                    f"got {got}"
                ) from None
        value = items
    elif isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list | tuple):
        value = [value]
    if not value:
        raise UsageError(f"{setting(key)} is an empty list; give at least one value")
    items = []
    for item in value:
        if key in _NUMBERS and isinstance(item, int) and not isinstance(item, bool):
            item = float(item)
        if isinstance(item, str):
            item = item.lower()
        items.append(item)
    return items[0] if len(items) == 1 else tuple(items)


def _check_keys(values: dict[str, Any]) -> None:
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key.replace("-", "_"), KEYS, n=1, cutoff=0.75)
        dashes = "; keys use underscores" if "-" in key else ""
        hint = f" (did you mean {close[0]!r}{dashes}?)" if close else ""
        raise UsageError(f"unknown config key {key!r}{hint}; known keys: {', '.join(KEYS)}")


def _shown(key: str, value: Any) -> str:
    """Setting `key`'s `value` as a message quotes it: a boolean as TOML writes it where a
    preset gave it (true), else its repr (True, 'relu')."""
    if isinstance(value, bool) and from_a_preset(key):
        return str(value).lower()
    return repr(value)


def check_contradictions(values: dict[str, Any]) -> None:
    """Refuse settings given together that contradict each other.

    `values` are the settings a user gave (flags, a preset, or both merged), before defaults:
    a list of seeds (`--seed 0,1`) with a count of seeds (`--seeds N`) is one such pair,
    whatever N is, since each says which seeds to train.
    """
    seed = values.get("seed")
    if isinstance(seed, str) and "," in seed:
        seed = _parse_seeds(seed)
    if isinstance(seed, list | tuple) and len(seed) > 1 and values.get("seeds") is not None:
        listed = ",".join(map(str, seed))
        raise UsageError(
            f"{setting('seed')} {listed} and {setting('seeds')} {values['seeds']} contradict "
            "each other: give either a list of seeds (--seed 0,1,2) or a first seed and a "
            "count (--seed 0 --seeds 3)"
        )


def make_config(overrides: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """A RunConfig from `base` (or the defaults) with `overrides` applied.

    Unknown keys and settings that contradict each other within `overrides` are usage errors.
    """
    _check_keys(overrides)
    check_contradictions(overrides)
    values = dict(overrides)
    if isinstance(values.get("activations"), str):
        values["activations"] = split_names(values["activations"])
    elif isinstance(values.get("activations"), list):
        values["activations"] = tuple(values["activations"])
    if isinstance(values.get("seed"), str):
        values["seed"] = _parse_seeds(values["seed"])
    elif isinstance(values.get("seed"), list):
        values["seed"] = tuple(values["seed"])
    if isinstance(values.get("seed"), tuple) and len(values["seed"]) == 1:
        values["seed"] = values["seed"][0]
    for key in GRID_KEYS:
        if key in values and values[key] is not None:
            values[key] = _grid_value(key, values[key])
    for key in ("device", "backend"):
        if isinstance(values.get(key), str):
            values[key] = values[key].lower()
    for key in ("data_dir", "results_dir"):
        if isinstance(values.get(key), os.PathLike):
            values[key] = os.fspath(values[key])
    return replace(base or RunConfig(), **values)


def read_toml(path: Path) -> dict[str, Any]:
    """The key/value table of a TOML preset, with a one-line error for unreadable or invalid files."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read config file {path}: {err}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"config file {path} is not valid TOML: {err}") from None
    nested = [key for key, value in data.items() if isinstance(value, dict)]
    if nested:
        raise UsageError(
            f"unknown config key {nested[0]!r} in {path}: presets are flat key = value"
        )
    return data


def load_config(path: Path | str | None = None, **overrides: Any) -> RunConfig:
    """Defaults, then the preset at `path` (if any), then `overrides` (None values are ignored).

    The merged settings are checked, not the preset on its own: a preset's value that an
    override replaces is never an error (the override wins). Errors name a setting the
    preset gave by its file ("p.toml's lr"); unknown keys are refused wherever they are.
    """
    preset: dict[str, Any] = {}
    if path is not None:
        preset = read_toml(Path(path))
        try:
            _check_keys(preset)
        except UsageError as err:
            raise UsageError(f"{path}: {err}") from None
    given = {key: value for key, value in overrides.items() if value is not None}
    _check_keys(given)
    if path is None:
        return make_config(given)
    with from_preset(str(path), set(preset) - set(given), set(given)):
        return make_config({**preset, **given})
