"""The one JSON sanitiser (harness.jsonable): numpy types, containers, and the three policies for
non-finite floats."""

import json
import math
from pathlib import Path

import numpy as np

from harness.jsonable import NULL_NAN, STRINGS, jsonable


def test_numpy_and_containers_become_plain_json():
    x = {"a": np.float32(1.5), 2: (np.int64(3), np.bool_(True)), "arr": np.arange(3), "p": Path("x/y")}
    out = jsonable(x)
    assert out == {"a": 1.5, "2": [3, True], "arr": [0, 1, 2], "p": "x/y"}
    assert type(out["2"][0]) is int and type(out["2"][1]) is bool
    json.dumps(out)


def test_nonfinite_policies():
    x = [math.nan, math.inf, -math.inf, 1.0]
    kept = jsonable(x)
    assert math.isnan(kept[0]) and kept[1:] == [math.inf, -math.inf, 1.0]
    assert jsonable(x, nonfinite=STRINGS) == ["nan", "inf", "-inf", 1.0]
    assert jsonable(x, nonfinite=NULL_NAN) == [None, "inf", "-inf", 1.0]
