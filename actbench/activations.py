"""The registry of activation functions, and how a user's name or `module:attr` spec becomes one."""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from actbench.catalog import CATALOG
from actbench.errors import UsageError


@dataclass(frozen=True)
class ActivationInfo:
    """One registered activation: how to build it and how to describe it."""

    name: str
    build: Callable[[float | None], nn.Module]  # the optional parameter after ':' (None = default)
    formula: str
    output_range: str
    note: str
    aliases: tuple[str, ...] = ()
    parameter: str | None = None  # what the number in `name:NUMBER` sets, if anything
    elementwise: bool = True  # False when a unit's output depends on the other units
    dies: bool = False  # ReLU-like: a unit can get stuck giving no positive output ("dead")
    bounds: tuple[float, float] | None = None  # both output limits, for bounded functions


class Lambda(nn.Module):
    """Wraps a plain tensor function as a module."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


# The module each built-in activation is computed by, given the number after ':' (None =
# its default); what they are is described in `actbench.catalog`, which needs no torch.
_BUILD: dict[str, Callable[[float | None], nn.Module]] = {
    "relu": lambda p: nn.ReLU(),
    "leaky": lambda p: nn.LeakyReLU(_or(p, 0.01)),
    "sigmoid": lambda p: nn.Sigmoid(),
    "tanh": lambda p: nn.Tanh(),
    "softmax": lambda p: nn.Softmax(dim=-1),
    "elu": lambda p: nn.ELU(_or(p, 1.0)),
    "gelu": lambda p: nn.GELU(),
    "silu": lambda p: nn.SiLU(),
    "mish": lambda p: nn.Mish(),
    "selu": lambda p: nn.SELU(),
    "softplus": lambda p: nn.Softplus(beta=_or(p, 1.0)),
    "prelu": lambda p: nn.PReLU(init=_or(p, 0.25)),
    "identity": lambda p: nn.Identity(),
}
REGISTRY: tuple[ActivationInfo, ...] = tuple(
    ActivationInfo(build=_BUILD[e.name], **vars(e)) for e in CATALOG
)

# Which functions can have dead units, and which saturate between two bounds.
_DIES = {"relu", "leaky", "prelu", "elu", "selu", "gelu", "silu", "mish"}
_BOUNDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softmax": (0.0, 1.0)}
REGISTRY = tuple(
    replace(info, dies=info.name in _DIES, bounds=_BOUNDS.get(info.name)) for info in REGISTRY
)

_BY_NAME: dict[str, ActivationInfo] = {}
for _info in REGISTRY:
    for _name in (_info.name, *_info.aliases):
        _BY_NAME[_name] = _info


@dataclass(frozen=True)
class Activation:
    """A resolved activation: its label in results, and a factory for a fresh module."""

    label: str
    make: Callable[[], nn.Module]
    info: ActivationInfo | None = None  # None for a user's own activation
    elementwise: bool = True

    def __call__(self) -> nn.Module:
        return self.make()

    @property
    def dies(self) -> bool:
        return self.info is not None and self.info.dies

    @property
    def bounds(self) -> tuple[float, float] | None:
        return None if self.info is None else self.info.bounds


def known_names() -> list[str]:
    return [info.name for info in REGISTRY]


def _unknown(name: str) -> UsageError:
    close = difflib.get_close_matches(name.lower(), list(_BY_NAME), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UsageError(
        f"unknown activation {name!r}{hint}; known: {', '.join(known_names())}, "
        "or your own as package.module:attribute"
    )


def _format_number(value: float) -> str:
    return f"{value:g}"


def _registered(name: str, parameter: str | None) -> Activation:
    info = _BY_NAME[name.lower()]
    value: float | None = None
    label = info.name
    if parameter is not None:
        if info.parameter is None:
            raise UsageError(
                f"activation {info.name!r} takes no parameter; write just {info.name!r}"
            )
        try:
            value = float(parameter)
        except ValueError:
            raise UsageError(
                f"the {info.parameter} in {name}:{parameter} must be a number, e.g. {info.name}:0.1"
            ) from None
        if not math.isfinite(value):
            raise UsageError(f"the {info.parameter} in {name}:{parameter} must be finite")
        label = f"{info.name}:{_format_number(value)}"
    return Activation(label, lambda: info.build(value), info, info.elementwise)


def _custom(spec: str) -> Activation:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or not module_name.replace(".", "").replace("_", "").isalnum():
        raise UsageError(f"cannot read activation {spec!r}: write package.module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UsageError(
            f"cannot import {module_name!r} for activation {spec!r} ({err}); "
            "check the module is installed or on PYTHONPATH"
        ) from None
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UsageError(f"{module_name!r} has no attribute {attr!r} (activation {spec!r})")
        target = getattr(target, part)
    if inspect.isclass(target) and issubclass(target, nn.Module):
        make: Callable[[], nn.Module] = target
    elif callable(target) and not inspect.isclass(target):
        fn = target
        make = lambda: Lambda(fn)  # noqa: E731
    else:
        raise UsageError(
            f"{spec!r} is not an activation: give an nn.Module class or a tensor function"
        )
    activation = Activation(spec, make)
    _check_custom(activation)
    return activation


def _check_custom(activation: Activation) -> None:
    """A custom activation must map a float tensor to a float tensor of the same shape."""
    probe = torch.linspace(-3, 3, 12).reshape(3, 4)
    try:
        out = activation()(probe)
    except Exception as err:
        raise UsageError(
            f"{activation.label!r} is not an activation: calling it on a tensor failed ({err})"
        ) from None
    if not isinstance(out, torch.Tensor) or out.shape != probe.shape or not out.is_floating_point():
        raise UsageError(
            f"{activation.label!r} is not an activation: it must return a float tensor "
            "of the same shape as its input"
        )


def resolve(spec: str) -> Activation:
    """'ReLU' -> relu, 'leaky:0.1' -> leaky with slope 0.1, 'pkg.mod:Attr' -> a user's own."""
    spec = spec.strip()
    if not spec:
        raise UsageError("empty activation name; give a comma-separated list such as relu,tanh")
    head, colon, tail = spec.partition(":")
    if head.lower() in _BY_NAME:
        return _registered(head, tail if colon else None)
    if colon:
        return _custom(spec)
    raise _unknown(spec)


def resolve_all(specs: tuple[str, ...] | list[str]) -> list[Activation]:
    """Resolve a list of specs, refusing duplicates (after aliases and case are folded)."""
    activations = [resolve(spec) for spec in specs]
    seen: dict[str, str] = {}
    for spec, activation in zip(specs, activations, strict=True):
        if activation.label in seen:
            raise UsageError(
                f"activation {spec.strip()!r} is listed twice (as {seen[activation.label]!r}); "
                "list each once"
            )
        seen[activation.label] = spec.strip()
    return activations
