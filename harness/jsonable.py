"""`jsonable(x)`: x as plain JSON types, recursively: numpy scalars and arrays, tuples and paths turned
into int / float / bool / list / str, mapping keys into str. One sanitiser for every JSON the harness
writes (instance metadata, study cells and reports, audit reports, CI baselines).

`nonfinite` says how a NaN or infinite float is written: `None` keeps the float (Python's json then
writes NaN / Infinity), `STRINGS` writes "nan", "inf", "-inf", and `NULL_NAN` writes null for NaN and
"inf" / "-inf" for the infinities (the study's cells).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

import numpy as np


def STRINGS(v: float) -> str:
    return str(v)


def NULL_NAN(v: float) -> str | None:
    return None if math.isnan(v) else ("inf" if v > 0 else "-inf")


def jsonable(x: Any, *, nonfinite: Callable[[float], Any] | None = None) -> Any:
    if isinstance(x, Mapping):
        return {str(k): jsonable(v, nonfinite=nonfinite) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v, nonfinite=nonfinite) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist(), nonfinite=nonfinite)
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) or nonfinite is None else nonfinite(v)
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, PurePath):
        return str(x)
    return str(x)
