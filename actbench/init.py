"""How the network's linear layers start: PyTorch's default, or He, Glorot or LeCun normal.

The schemes (`--init`), for a layer with `fan_in` inputs and `fan_out` outputs:

- `torch`: `nn.Linear`'s own default, drawn as `nn.Linear` draws it: weights and biases
  uniform on ±1/sqrt(fan_in) (`kaiming_uniform_` with a = sqrt(5), then the bias).
- `kaiming`: He, Zhang, Ren and Sun 2015, "Delving deep into rectifiers", for ReLU networks:
  weights normal with std sqrt(2 / fan_in), `torch.nn.init.kaiming_normal_(w,
  mode="fan_in", nonlinearity="relu")`; biases zero.
- `xavier`: Glorot and Bengio 2010, "Understanding the difficulty of training deep
  feedforward neural networks": std sqrt(2 / (fan_in + fan_out)), `xavier_normal_(w)`
  (gain 1); biases zero.
- `lecun`: LeCun, Bottou, Orr and Müller 1998, "Efficient BackProp", the initialisation
  Klambauer et al. 2017 ("Self-normalizing neural networks") prescribe for SELU: std
  1/sqrt(fan_in), `kaiming_normal_(w, mode="fan_in", nonlinearity="linear")`; biases zero.
- `auto`: each activation's recommended scheme (`actbench.catalog`; a user's own activation
  gets `torch`).

Every scheme uses one formula for every activation (kaiming keeps ReLU's gain sqrt(2) for
leaky ReLU and PReLU too), so models of one seed that share a scheme start from the same
weights. The weights are drawn from torch's global generator, layer after layer, first to
last; the zero biases draw nothing.
"""

from __future__ import annotations

from torch import nn

SCHEMES = ("torch", "kaiming", "xavier", "lecun")  # what a layer can be given; `auto` picks one
AUTO = "auto"


def scheme_for(init: str, recommended: str) -> str:
    """The scheme a model is built with: `init`, or the activation's `recommended` for auto."""
    scheme = recommended if init == AUTO else init
    if scheme not in SCHEMES:
        raise ValueError(f"unknown initialisation {scheme!r}; known: {', '.join(SCHEMES)}")
    return scheme


def make_linear(in_features: int, out_features: int, scheme: str) -> nn.Linear:
    """An `nn.Linear(in_features, out_features)` started by `scheme` (one of `SCHEMES`).

    The weight is (out_features, in_features), as `nn.Linear` has it; `fan_in` is
    in_features. Raises ValueError for an unknown scheme.
    """
    if scheme == "torch":
        return nn.Linear(in_features, out_features)
    if scheme not in SCHEMES:
        raise ValueError(f"unknown initialisation {scheme!r}; known: {', '.join(SCHEMES)}")
    layer = nn.utils.skip_init(nn.Linear, in_features, out_features)  # draws nothing
    if scheme == "kaiming":
        nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
    elif scheme == "xavier":
        nn.init.xavier_normal_(layer.weight)
    else:  # lecun
        nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="linear")
    nn.init.zeros_(layer.bias)
    return layer
