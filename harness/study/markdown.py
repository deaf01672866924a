"""The report as text: the plain-text summary table the CLI prints and report.md (Markdown embedding
the figures), from the report dict of `harness.study.report.analyse`."""

from __future__ import annotations

import math
from typing import Any

DEFAULT_FIT_MIN = 10


def _fmt(v: Any, spec: str = ".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, spec)


def _cross_text(c: dict | None) -> str:
    if not c:
        return "-"
    if c["x_star"] is None:
        return "none"

    def size(v):  # an extrapolated L* can be astronomically far: keep the line readable
        return _fmt(v, ".0f" if v is None or v < 1e7 else ".1e")

    ci = f" [{size(c['ci'][0])}, {size(c['ci'][1])}]" if c.get("ci") else ""
    return f"{size(c['x_star'])}{ci}{' (extrapolated)' if c['extrapolated'] else ''}"


def summary_table(rep: dict) -> str:
    """Plain-text summary: solver, exponent +- CI, op-count exponent, max error, crossover."""
    w = max([14] + [len(r["solver"]) for r in rep["summary"]])  # a --solver spec can be long
    head = (
        f"{'solver':<{w}} {'L fitted':<13} {'time exponent [95% CI]':<24} {'ops exp':>7} {'max |err|':>10}  "
        "crossover L* vs best exact"
    )
    lines = [head, "-" * len(head)]
    if not rep["summary"]:
        lines.append("(no scaling cells in this run: see report.md for the other groups)")
    for r in rep["summary"]:
        ex = "-" if r["exponent"] is None else f"{r['exponent']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]"
        lines.append(
            f"{r['solver']:<{w}} {r['L_fit'][0]:>5}-{r['L_fit'][1]:<7} {ex:<24} "
            f"{_fmt(r['ops_exponent'], '.2f'):>7} {_fmt(r['max_abs_error'], '.1e'):>10}  "
            f"{_cross_text(r['crossover'])}"
        )
    return "\n".join(lines)


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(out)


def markdown(rep: dict, figures: dict[str, str]) -> str:
    cfg = rep["config"]
    exact_min = cfg.get("fit_min_log2L", DEFAULT_FIT_MIN)
    approx_min = cfg.get("poly_fit_min_log2L", exact_min)
    parts = [
        "# Scaling study report",
        "",
        f"{rep['n_cells']} cells, {rep['cell_seconds']:.0f} s of measurement; device "
        f"{cfg.get('device', '?')}, dtype {cfg.get('dtype', '?')}. Generated from `table.json` only "
        "(`lora-harness run`, harness/study/report.py).",
        "",
        "## Runtime exponents",
        "",
        f"Log-log least squares of the median time over the sizes in `L fitted` (exact solvers L >= "
        f"2^{exact_min}, approximate ones L >= 2^{approx_min}: where the working set outgrows the L3 "
        "cache and fixed overheads no longer dominate; per-series overrides in the config); bootstrap "
        "95% CI over residuals and timing repeats; `ops exp` is the same fit on the deterministic op counts.",
        "",
        "```",
        summary_table(rep),
        "```",
        "",
    ]
    for key, cap in (
        ("time", "Time against L (log-log), fitted slopes with 95% CI"),
        ("error", "Max-norm gradient error against L, with the 1/poly(L) target"),
    ):
        if key in figures:
            parts += [f"![{cap}]({figures[key]})", "", f"*{cap}.*", ""]
    ph = rep["phase"]["cells"]
    if ph:
        parts += [
            "## Phase transition (Γ = c sqrt(log L))",
            "",
            "Per cell: `theory.certify` for eps = 1/L gives the Taylor degree g and rank k = C(d+g, g) "
            "the polynomial method needs; the budget error is the measured max-norm relative error "
            f"at the fixed rank budget k <= {ph[0]['budget_rank']}; "
            "ops ratio = predicted poly ops / exact ops.",
            "",
        ]
        if "phase" in figures:
            parts += [f"![Phase transition]({figures['phase']})", ""]
        parts += [
            _md_table(
                ["c", "L", "R", "regime", "g", "rank k", "budget rel err", "ops ratio", "poly s (needed g)"],
                [
                    [
                        p["c"],
                        p["L"],
                        _fmt(p["R"]),
                        p["regime"],
                        p["degree"],
                        p["rank"],
                        _fmt(p["budget_max_rel_error"], ".1e"),
                        _fmt(p["ops_ratio"], ".2g"),
                        _fmt(p["needed_seconds"], ".3f"),
                    ]
                    for p in ph
                ],
            ),
            "",
            "Rank growth exponent (log k against log L) per c: "
            + ", ".join(
                f"c={c}: {g['rank_exponent']:.2f}" for c, g in rep["phase"]["rank_growth"].items() if g
            ),
            "",
        ]
    if rep["rank"] or rep["dim"]:
        parts += ["## LoRA rank r and head dimension d", ""]
        if rep["rank"]:
            parts += [
                _md_table(
                    ["r", "exact s", "poly s", "speedup", "ops speedup", "poly rank k"],
                    [
                        [
                            x["r"],
                            _fmt(x["exact_seconds"], ".3f"),
                            _fmt(x["poly_seconds"], ".3f"),
                            _fmt(x["speedup"], ".2f"),
                            _fmt(x["ops_speedup"], ".2f"),
                            x["poly_rank"],
                        ]
                        for x in rep["rank"]
                    ],
                ),
                "",
            ]
        if rep["dim"]:
            parts += [
                _md_table(
                    ["d", "poly rank k", "speedup at max L", "ops speedup", "L* (time) [95% CI]", "L* (ops)"],
                    [
                        [
                            x["d"],
                            x["poly_rank"],
                            _fmt(x["speedup_at_max_L"], ".2f"),
                            _fmt(x["ops_speedup_at_max_L"], ".2f"),
                            _cross_text(x["crossover"]),
                            _cross_text(x["ops_crossover"]),
                        ]
                        for x in rep["dim"]
                    ],
                ),
                "",
            ]
        for key, cap in (
            ("speedup", "Speedup of poly over the exact closed form against r and d"),
            ("crossover", "Crossover L* against head dimension d"),
        ):
            if key in figures:
                parts += [f"![{cap}]({figures[key]})", "", f"*{cap}.*", ""]
    return "\n".join(parts) + "\n"
