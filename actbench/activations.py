"""The registry of activation functions, and how a user's name or `module:attr` spec becomes one.

A spec may carry a short label for the results: `sin=torch:sin` trains `torch.sin` and names
it `sin` in the CSV, the tables and the figures.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import re
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
    init: str = "torch"  # the initialisation `--init auto` gives it (see `actbench.catalog`)
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
    spec: str = ""  # as the user gave it, label included ('sin=torch:sin'); '' = the label
    function: str = ""  # which function, without a label ('torch:sin', 'leaky:0.1'); '' = label

    @property
    def given(self) -> str:
        """The spec as the user wrote it, for messages."""
        return self.spec or self.label

    @property
    def key(self) -> str:
        """What tells two functions apart, whatever their labels."""
        return self.function or self.label

    def __call__(self) -> nn.Module:
        return self.make()

    @property
    def dies(self) -> bool:
        return self.info is not None and self.info.dies

    @property
    def bounds(self) -> tuple[float, float] | None:
        return None if self.info is None else self.info.bounds

    @property
    def recommended_init(self) -> str:
        """The initialisation `--init auto` gives it; "torch" (the default) for a user's own."""
        return "torch" if self.info is None else self.info.init


def known_names() -> list[str]:
    return [info.name for info in REGISTRY]


def _unknown(name: str) -> UsageError:
    close = difflib.get_close_matches(name.lower(), list(_BY_NAME), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UsageError(
        f"unknown activation {name!r}{hint}; known: {', '.join(known_names())}, "
        "or your own as package.module:attribute (label=package.module:attribute names it)"
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
    return Activation(label, lambda: info.build(value), info, info.elementwise, function=label)


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
    except Exception as err:  # the module itself fails as it is imported
        raise UsageError(
            f"importing {module_name!r} for activation {spec!r} failed ({_reason(err)}); "
            "fix that module"
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
    return Activation(spec, make, function=spec)


# A short label: what the CSV, the tables and the figures call an activation.
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,29}")


def split_label(spec: str) -> tuple[str | None, str]:
    """'sin=torch:sin' -> ('sin', 'torch:sin'); 'relu' -> (None, 'relu'). Checks nothing."""
    label, equals, inner = spec.strip().partition("=")
    return (label.strip(), inner.strip()) if equals else (None, spec.strip())


def _check_label(label: str, spec: str) -> None:
    if not _LABEL.fullmatch(label):
        raise UsageError(
            f"cannot use {label!r} as the label of activation {spec!r}: a label is up to 30 "
            "letters, digits, '_', '.', '+' or '-', starting with a letter or digit, "
            "e.g. sin=torch:sin"
        )
    if label.lower() in _BY_NAME:
        raise UsageError(
            f"cannot use {label!r} as the label of activation {spec!r}: it names the built-in "
            f"activation {_BY_NAME[label.lower()].name!r}; choose another label"
        )


def resolve(spec: str) -> Activation:
    """'ReLU' -> relu, 'leaky:0.1' -> leaky with slope 0.1, 'pkg.mod:Attr' -> a user's own.

    'label=spec' gives the activation `spec` the label `label` in the results. Raises
    UsageError, naming the fix, for anything that cannot be resolved.
    """
    spec = spec.strip()
    label, inner = split_label(spec)
    if label is not None:
        _check_label(label, spec)
        if not inner:
            raise UsageError(f"activation {spec!r} has a label but no function, e.g. sin=torch:sin")
        return replace(_resolve_function(inner), label=label, spec=spec)
    return _resolve_function(spec)


def _resolve_function(spec: str) -> Activation:
    if not spec:
        raise UsageError("empty activation name; give a comma-separated list such as relu,tanh")
    head, colon, tail = spec.partition(":")
    if head.lower() in _BY_NAME:
        return _registered(head, tail if colon else None)
    if colon:
        return _custom(spec)
    raise _unknown(spec)


def resolve_all(specs: tuple[str, ...] | list[str]) -> list[Activation]:
    """Resolve a list of specs, refusing any function or label listed twice.

    Functions are compared after aliases and case are folded (`leaky` and `Leaky_ReLU` are
    one), labels as written.
    """
    activations = [resolve(spec) for spec in specs]
    functions: dict[str, str] = {}
    labels: dict[str, str] = {}
    for activation in activations:
        given = activation.given
        if activation.key in functions:
            raise UsageError(
                f"activation {given!r} is listed twice (as {functions[activation.key]!r}); "
                "list each once"
            )
        if activation.label in labels:
            raise UsageError(
                f"the label {activation.label!r} is given twice ({labels[activation.label]!r} "
                f"and {given!r}); give each activation its own label"
            )
        functions[activation.key] = given
        labels[activation.label] = given
    return activations


def _reason(err: BaseException) -> str:
    """An exception as a short phrase for a one-line message."""
    text = " ".join(str(err).split())
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


PROBE_ROWS = 16  # rows of the probe's training-step input (fewer when batches are smaller)
PROBE_SCALE = 2.0  # the probe's inputs are normal with this standard deviation


def check_trainable(activation: Activation, batch_size: int, hidden: int) -> None:
    """Refuse, before anything is written, a user's activation that the network cannot train.

    Does what training does, on small random (rows, hidden) float32 tensors: builds two
    modules (one per hidden layer) and calls each as the training step calls it, on an input
    that requires grad, then runs the backward pass from a random output gradient; then
    calls one as the test pass does, on another number of rows without gradients. The output
    must be a finite float32 tensor of the input's shape that autograd connects to the input,
    the input must stay unchanged, and the gradient must be finite. torch's global random
    state is left as it was. Built-in activations are not probed (tests check them against
    torch's own functions).

    Raises UsageError naming the reason and the fix.
    """
    if activation.info is not None:
        return
    rows = max(1, min(batch_size, PROBE_ROWS))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, hidden, generator=generator) * PROBE_SCALE
    other = torch.randn(rows, hidden, generator=generator) * PROBE_SCALE
    grad_out = torch.randn(rows, hidden, generator=generator)
    with torch.random.fork_rng(devices=[]):
        modules = [_build(activation) for _ in range(2)]
        for module in modules:
            _probe_step(activation, module, x, other, grad_out)
        test_rows = rows + 3  # not the training rows: the test pass has its own batch size
        test_x = torch.randn(test_rows, hidden, generator=generator) * PROBE_SCALE
        with torch.no_grad():
            try:
                out = modules[0](test_x)
            except Exception as err:
                raise _refusal(
                    activation, err, "calling it without gradients (as the test pass does)"
                ) from None
        _check_output(activation, out, test_x)


def _refused(activation: Activation, reason: str, fix: str) -> UsageError:
    return UsageError(f"activation {activation.given!r} cannot be trained: {reason}; {fix}")


def _build(activation: Activation) -> nn.Module:
    try:
        module = activation()
    except Exception as err:
        raise _refused(
            activation,
            f"creating it failed ({_reason(err)})",
            "an nn.Module class must need no arguments",
        ) from None
    if not isinstance(module, nn.Module):
        raise _refused(
            activation, f"creating it gave {type(module).__name__}", "give an nn.Module class"
        )
    return module


def _refusal(activation: Activation, err: Exception, what: str) -> UsageError:
    """The refusal for an exception raised by `what` (a forward or backward pass)."""
    text = str(err)
    if isinstance(err, RuntimeError) and ("in-place operation" in text or "inplace" in text):
        return _refused(
            activation,
            f"it changes its input in place ({_reason(err)})",
            "return a new tensor instead",
        )
    return _refused(
        activation,
        f"{what} failed ({_reason(err)})",
        "it must take one float tensor (samples, units), return one of the same shape and "
        "have a working backward pass",
    )


def _check_output(activation: Activation, out: object, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise _refused(
            activation,
            f"it returns {type(out).__name__}, not a tensor",
            "return a tensor of the input's shape",
        )
    if out.shape != x.shape:
        raise _refused(
            activation,
            f"it returns shape {tuple(out.shape)} for an input of shape {tuple(x.shape)}",
            "return one value per unit (the input's shape)",
        )
    if out.dtype != x.dtype:
        raise _refused(
            activation,
            f"it returns {out.dtype} for a {x.dtype} input",
            "return the input's dtype",
        )
    if not bool(torch.isfinite(out).all()):
        raise _refused(
            activation,
            f"it returns NaN or infinite values for ordinary inputs (normal, sd {PROBE_SCALE:g})",
            "make it finite for every finite input",
        )
    return out


def _probe_step(
    activation: Activation,
    module: nn.Module,
    x: torch.Tensor,
    other: torch.Tensor,
    grad_out: torch.Tensor,
) -> None:
    """One training step's use of `module`: forward on a leaf that requires grad, backward."""
    given = x.clone().requires_grad_()
    how = f"calling it on a {tuple(x.shape)} tensor that requires grad (as training does)"
    try:
        with torch.enable_grad():
            out = module(given)
    except Exception as err:
        raise _refusal(activation, err, how) from None
    if not torch.equal(given.detach(), x):
        raise _refused(activation, "it changes its input in place", "return a new tensor instead")
    _check_output(activation, out, x)
    params = [p for p in module.parameters() if p.requires_grad]
    grad = None
    if out.requires_grad:
        try:
            grad = torch.autograd.grad(out, [given, *params], grad_out, allow_unused=True)[0]
        except Exception as err:
            raise _refusal(activation, err, "its backward pass") from None
    if grad is None:
        with torch.no_grad():
            try:
                moved = not torch.equal(module(other), out.detach())
            except Exception:
                moved = True
        if moved:
            raise _refused(
                activation,
                "its output depends on its input but carries no gradient back to it (it "
                "leaves autograd: .detach(), .numpy(), torch.no_grad() or a new tensor)",
                "compute it with torch operations on the input tensor",
            )
        raise _refused(
            activation,
            "its output does not depend on its input",
            "compute it from the input tensor",
        )
    if not bool(torch.isfinite(grad).all()):
        raise _refused(
            activation,
            "its gradient is NaN or infinite for ordinary inputs",
            "make its derivative finite for every finite input",
        )
