"""Typed, ranged solver options, declared by each solver class and checked before it runs.

    class StreamingSolver(Solver):
        options = {"block_q": Option(int, None, min=1, auto=True, help="query rows per tile"),
                   "block_k": Option(int, None, min=1, auto=True, help="key columns per tile")}

`validate_options(solver_name, schema, given)` returns the full option dict (defaults filled in) or
raises one HarnessError line naming the option, e.g.
"solver 'streaming': option block_k must be an integer >= 1, got -3".
Rules: bool is never an int or float; a float with an integer value (1e3) is an int; floats must be
finite; JSON null (None) is allowed only where `auto=True` (it means "the solver chooses", same as the
default None). A solver whose `options` is a plain {name: default} dict still works: each option's
type is inferred from its default (None: any value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _show(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


@dataclass(frozen=True)
class Option:
    """One solver option: its type, default and inclusive range (`gt` is an exclusive lower bound)."""

    kind: type
    default: Any = None
    min: float | None = None
    max: float | None = None
    gt: float | None = None
    auto: bool = False
    choices: tuple = ()
    help: str = ""

    def describe(self) -> str:
        """e.g. 'int >= 1, default auto'."""
        parts = [self.kind.__name__]
        if self.choices:
            parts = ["one of " + ", ".join(map(str, self.choices))]
        if self.gt is not None:
            parts.append(f"> {_num(self.gt)}")
        if self.min is not None and self.max is not None:
            parts.append(f"in [{_num(self.min)}, {_num(self.max)}]")
        elif self.min is not None:
            parts.append(f">= {_num(self.min)}")
        elif self.max is not None:
            parts.append(f"<= {_num(self.max)}")
        d = "auto" if self.default is None else _show(self.default)
        return " ".join(parts) + f", default {d}"

    def check(self, solver: str, name: str, value: Any) -> Any:
        """The value coerced to `kind`, or a one-line HarnessError."""

        def bad() -> HarnessError:
            rng = self.describe().rsplit(", default", 1)[0]
            want = _NAMES.get(self.kind, self.kind.__name__)
            rest = rng[len(self.kind.__name__) :]
            if self.choices:
                want, rest = "one of " + ", ".join(map(str, self.choices)), ""
            return HarnessError(
                f"solver {solver!r}: option {name} must be {want}{rest}"
                f"{' or null (auto)' if self.auto else ''}, got {_show(value)}"
            )

        if value is None:
            if self.auto:
                return None
            raise bad()
        v = value
        if self.kind is bool:
            if not isinstance(v, bool):
                raise bad()
        elif self.kind is int:
            if isinstance(v, bool):
                raise bad()
            if isinstance(v, float) and math.isfinite(v) and v == int(v):
                v = int(v)
            if not isinstance(v, int):
                raise bad()
        elif self.kind is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise bad()
            v = float(v)
            if not math.isfinite(v):
                raise bad()
        elif self.kind is str:
            if not isinstance(v, str):
                raise bad()
        if self.choices and v not in self.choices:
            raise bad()
        if self.kind in (int, float):
            if (
                (self.gt is not None and not v > self.gt)
                or (self.min is not None and v < self.min)
                or (self.max is not None and v > self.max)
            ):
                raise bad()
        return v


def as_schema(options: Mapping[str, Any]) -> dict[str, Option]:
    """A solver's `options` as Options (plain defaults get an inferred type)."""
    out = {}
    for k, v in options.items():
        if isinstance(v, Option):
            out[k] = v
        elif isinstance(v, bool):
            out[k] = Option(bool, v)
        elif isinstance(v, int):
            out[k] = Option(int, v)
        elif isinstance(v, float):
            out[k] = Option(float, v)
        elif isinstance(v, str):
            out[k] = Option(str, v)
        else:
            out[k] = _Any(object, v, auto=True)
    return out


class _Any(Option):
    def check(self, solver, name, value):
        return value

    def describe(self) -> str:
        return f"any, default {_show(self.default)}"


def validate_options(solver: str, options: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every given option checked (module docstring)."""
    schema = as_schema(options)
    unknown = sorted(set(given) - set(schema))
    if unknown:
        allowed = ", ".join(sorted(schema)) or "none"
        raise HarnessError(f"solver {solver!r} has no option {unknown[0]!r} (options: {allowed})")
    out = {k: o.default for k, o in schema.items()}
    for k, v in given.items():
        out[k] = schema[k].check(solver, k, v)
    return out
