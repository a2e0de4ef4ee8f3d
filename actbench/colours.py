"""How far apart two colours look: the CIEDE2000 colour difference, from coloraide.

ΔE00 is defined by the CIE (CIE 142-2001); its implementation notes and test data are by
G. Sharma, W. Wu and E. N. Dalal, Color Research and Application 30(1), 2005. Colours are
read as sRGB (matplotlib's names and hex codes) and compared in CIELAB under D65.
"""

from __future__ import annotations

from coloraide import Color
from matplotlib.colors import to_hex


def lab(colour: str | tuple[float, ...]) -> tuple[float, float, float]:
    """CIELAB (D65) coordinates (L* 0-100, a*, b*) of a matplotlib colour."""
    converted = Color(to_hex(colour)).convert("lab-d65")
    return tuple(float(v) for v in converted.coords())  # type: ignore[return-value]


def delta_e(first: tuple[float, float, float], second: tuple[float, float, float]) -> float:
    """CIEDE2000 difference of two CIELAB (D65) colours: about 1 is just noticeable; colours
    that differ by less than about 20 are easily taken for one another. Symmetric."""
    a = Color("lab-d65", list(first))
    b = Color("lab-d65", list(second))
    return float(a.delta_e(b, method="2000"))


def distance(first: str, second: str) -> float:
    """CIEDE2000 difference of two matplotlib colours (names or hex codes)."""
    return delta_e(lab(first), lab(second))
