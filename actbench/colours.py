"""How far apart two colours look: CIELAB coordinates and the CIEDE2000 colour difference.

No installed library computes these (matplotlib stops at sRGB), so the formulas are written
out here from their sources: sRGB to CIE XYZ by IEC 61966-2-1 (D65 white), XYZ to CIELAB by
CIE 15:2004, and ΔE00 by G. Sharma, W. Wu and E. N. Dalal, "The CIEDE2000 color-difference
formula: implementation notes, supplementary test data, and mathematical observations",
Color Research and Application 30(1), 2005.
"""

from __future__ import annotations

import math

from matplotlib.colors import to_rgb

# sRGB (linear) to XYZ, D65 (IEC 61966-2-1), and the D65 white point (Y = 1)
_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
           (0.2126729, 0.7151522, 0.0721750),
           (0.0193339, 0.1191920, 0.9503041))  # fmt: skip
_WHITE = (0.95047, 1.0, 1.08883)


def lab(colour: str | tuple[float, ...]) -> tuple[float, float, float]:
    """The CIELAB coordinates (L* from 0 to 100, a*, b*) of an sRGB colour under D65.

    `colour` is anything matplotlib reads as a colour ('#1f77b4', 'red', an RGB tuple in
    [0, 1]); ValueError for anything else.
    """
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
    xyz = [sum(m * c for m, c in zip(row, linear, strict=True)) / w
           for row, w in zip(_TO_XYZ, _WHITE, strict=True)]  # fmt: skip
    e = 6 / 29
    fx, fy, fz = (t ** (1 / 3) if t > e**3 else t / (3 * e * e) + 4 / 29 for t in xyz)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def delta_e(first: tuple[float, float, float], second: tuple[float, float, float]) -> float:
    """The CIEDE2000 difference ΔE00 between two CIELAB colours (kL = kC = kH = 1).

    About 1 is the smallest difference one notices side by side; lines of a plot that differ
    by less than about 20 are easily taken for one another. Symmetric; 0 for equal colours.
    Follows Sharma, Wu and Dalal (2005), equations (1) to (22).
    """
    (l1, a1, b1), (l2, a2, b2) = first, second
    c_mean = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_mean**7 / (c_mean**7 + 25**7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = math.hypot(a1, b1), math.hypot(a2, b2)
    h1 = math.degrees(math.atan2(b1, a1)) % 360 if c1 else 0.0
    h2 = math.degrees(math.atan2(b2, a2)) % 360 if c2 else 0.0
    dh = 0.0
    if c1 * c2:
        dh = h2 - h1
        dh = dh - 360 if dh > 180 else dh + 360 if dh < -180 else dh
    d_big_h = 2 * math.sqrt(c1 * c2) * math.sin(math.radians(dh / 2))
    l_mean, c_mean = (l1 + l2) / 2, (c1 + c2) / 2
    if not c1 * c2:
        h_mean = h1 + h2
    elif abs(h1 - h2) <= 180:
        h_mean = (h1 + h2) / 2
    else:
        h_mean = (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(h_mean - 30)) + 0.24 * math.cos(math.radians(2 * h_mean))
         + 0.32 * math.cos(math.radians(3 * h_mean + 6))
         - 0.20 * math.cos(math.radians(4 * h_mean - 63)))  # fmt: skip
    rotation = 30 * math.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * math.sqrt(c_mean**7 / (c_mean**7 + 25**7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / math.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * c_mean
    s_h = 1 + 0.015 * c_mean * t
    r_t = -math.sin(math.radians(2 * rotation)) * r_c
    dl, dc, dh_term = (l2 - l1) / s_l, (c2 - c1) / s_c, d_big_h / s_h
    return math.sqrt(dl**2 + dc**2 + dh_term**2 + r_t * dc * dh_term)


def distance(first: str, second: str) -> float:
    """ΔE00 (`delta_e`) between two colours as matplotlib names them ('#1f77b4', 'red')."""
    return delta_e(lab(first), lab(second))
