"""Solver options are typed and ranged, declared by each solver and checked before it computes."""

from __future__ import annotations

import math

import pytest

from harness import families
from harness.errors import HarnessError
from harness.solvers import get_solver
from harness.solvers.options import Option, as_schema, validate_options

SCHEMA = {
    "block": Option(int, None, min=1, auto=True),
    "m": Option(int, 256, min=1, max=1 << 24),
    "eps": Option(float, None, gt=0, auto=True),
    "orth": Option(bool, False),
}


@pytest.mark.parametrize(
    "given,msg",
    [
        ({"block": -3}, "option block must be an integer >= 1 or null (auto), got -3"),
        ({"block": 0}, "got 0"),
        ({"block": "abc"}, "got 'abc'"),
        ({"block": 1.5}, "got 1.5"),
        ({"block": True}, "got true"),
        ({"m": None}, "option m must be an integer in [1, 16777216], got null"),
        ({"m": 1e30}, "got 1e+30"),
        ({"eps": 0}, "option eps must be a number > 0"),
        ({"eps": math.nan}, "got nan"),
        ({"eps": "nan"}, "got 'nan'"),
        ({"orth": 2}, "option orth must be true or false, got 2"),
        ({"zz": 1}, "has no option 'zz' (options: block, eps, m, orth)"),
    ],
)
def test_bad_values_named_in_one_line(given, msg):
    with pytest.raises(HarnessError) as e:
        validate_options("x", SCHEMA, given)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_defaults_coercion_and_auto():
    out = validate_options("x", SCHEMA, {"block": 1e3, "eps": 1})
    assert out == {"block": 1000, "m": 256, "eps": 1.0, "orth": False}
    assert isinstance(out["block"], int) and isinstance(out["eps"], float)
    assert validate_options("x", SCHEMA, {"block": None})["block"] is None


def test_plain_default_dicts_still_work():
    schema = as_schema({"k": 3, "name": "a", "flag": False, "any": None})
    assert validate_options("x", {"k": 3}, {"k": 4}) == {"k": 4}
    with pytest.raises(HarnessError, match="option k must be an integer"):
        validate_options("x", {"k": 3}, {"k": "4"})
    assert schema["any"].check("x", "any", [1]) == [1]


@pytest.mark.parametrize(
    "solver,opts",
    [
        ("streaming", {"block_k": -3}),
        ("streaming", {"block_q": 0}),
        ("random-features", {"m": 0}),
        ("random-features", {"seed": -1}),
        ("poly", {"eps": 0.0}),
        ("poly", {"max_rank": 0}),
        ("closed-form", {"block_q": 8}),
    ],
)
def test_builtin_solvers_refuse_before_computing(solver, opts):
    inst = families.bounded(L=8, d=4, r=2, seed=0)
    with pytest.raises(HarnessError, match=f"solver '{solver}'"):
        get_solver(solver).solve(inst, **opts)


def test_streaming_negative_block_was_garbage_and_is_now_refused():
    """block_k=-3 used to return torch.empty memory as gradients (exit 0); block_q=0 meant 'default'."""
    inst = families.bounded(L=16, d=4, r=2, seed=1)
    s = get_solver("streaming")
    ok = s.solve(inst, block_q=4, block_k=8)
    ref = get_solver("closed-form").solve(inst)
    assert ok.max_abs_error(ref) < 1e-12
    for bad in ({"block_k": -3}, {"block_q": 0}, {"block_q": True}):
        with pytest.raises(HarnessError):
            s.solve(inst, **bad)


def test_abstract_base_is_not_a_solver():
    from harness.solvers.base import Solver

    with pytest.raises(HarnessError, match="abstract solver class"):
        get_solver("harness.solvers.base:Solver").solve(families.bounded(L=4, d=2, seed=0))
    assert isinstance(get_solver("harness.solvers.base:Solver"), Solver)


def test_every_builtin_option_is_declared_with_a_type():
    for name in ("streaming", "sdpa", "poly", "poly-chained", "random-features"):
        for opt in get_solver(name).options.values():
            assert isinstance(opt, Option) and opt.kind in (int, float, bool, str)


def test_choices_named_in_the_message():
    with pytest.raises(HarnessError, match="option kernel must be one of fused, reference, got 'fast'"):
        validate_options("streaming", get_solver("streaming").options, {"kernel": "fast"})
