"""The audit's outputs: the terminal table (one row per head and a summary), the JSON report and the
plot of R against log L."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from harness import theory
from harness.io import atomic_write_bytes, atomic_write_text
from harness.jsonable import jsonable

REGIMES = ("efficient", "threshold", "hard")

REGIME_COLOURS = {"efficient": "tab:green", "threshold": "tab:orange", "hard": "tab:red"}


def _fmt_err(g: dict | None, name: str) -> str:
    if not g:
        return "-"
    rec = g.get(name)
    if rec is None:
        return "-"
    if rec["status"] == "ok":
        return f"{rec['abs_err']:.1e}"
    return rec["status"]


def format_table(report: dict[str, Any]) -> str:
    """The terminal table (one row per head) and a summary."""
    lines = [
        f"model {report['model']} ({report['model_type']}), L={report['L']} tokens, "
        f"log L={report['log_L']:.2f}, scale={report['scale']:g} (on {report.get('scale_on', 'q')}), "
        f"eps={report['eps']:g}, "
        f"construction={report['construction']} (d={report['heads'][0]['d']})",
        f"captured heads reproduce the model's attention output to {report['reproduction_max_err']:.1e}",
    ]
    hdr = (
        f"{'layer':>5} {'head':>4} {'R':>8} {'R/logL':>6} {'Rc':>6} {'Gamma':>6} {'|X|':>6} {'regime':>9} "
        f"{'g':>4} {'log10 k':>7} {'poly/exact':>10} {'poly err':>9} {'rf err':>8}"
    )
    lines += [hdr, "-" * len(hdr)]
    capped = 0
    for h in report["heads"]:
        ratio = h.get("cost_ratio")
        ge = "" if h.get("degree_found", True) else ">="  # the degree search stopped: lower bounds
        capped += bool(ge)
        lines.append(
            f"{h['layer']:>5} {h['head']:>4} {h['R']:>8.3g} {h['R'] / h['log_L']:>6.3g} "
            f"{h['direct']['R_centred']:>6.3g} "
            f"{h['direct']['gamma_QK']:>6.2f} {h['direct']['X_inf']:>6.2f} {str(h.get('regime') or '-'):>9} "
            f"{ge + str(h.get('degree', '-')):>4} {ge + format(h.get('rank_log10', float('nan')), '.1f'):>7} "
            f"{(ge + f'{ratio:.1e}' if ratio is not None else '-'):>10} {_fmt_err(h.get('grad'), 'poly'):>9} "
            f"{_fmt_err(h.get('grad'), 'random-features'):>8}"
        )
    if capped:
        lines.append(
            f">= : on {capped} heads no degree met eps={report['eps']:g} before the degree search stopped "
            "(at rank 1e12, or where the bound stops falling), so g, log10 k and poly/exact are lower bounds"
        )
    s = report["summary"]
    lines.append(
        f"regimes: {s['regimes']}; R from {s['R_min']:.2f} to {s['R_max']:.2f} "
        f"(median {s['R_median']:.2f}) against log L = {s['log_L']:.2f}; largest |score| negative "
        f"in {s['largest_score_negative']} heads; row-centred Rc up to {s['R_centred_max']:.2f}"
    )
    for name in ("poly", "random-features"):
        if name in s:
            v = s[name]
            extra = (
                f", max abs err {v['abs_err_max']:.2e}, max rel err {v['rel_err_max']:.2e}"
                if "abs_err_max" in v
                else ""
            )
            meets = f", meets eps on {v['meets_eps']}" if "meets_eps" in v else ""
            lines.append(f"{name}: {v['status']}{extra}{meets}")
    if report["causal"]:
        lines.append("causal heads: masked (query j attends keys m <= j) in R, certificates and every solver")
    return "\n".join(lines)


def write_json(report: dict[str, Any], path) -> None:
    atomic_write_text(path, json.dumps(jsonable(report), indent=1, sort_keys=True) + "\n")


def plot(report: dict[str, Any], path) -> None:
    """Left: R of every head against log L (length sweep plus the full text), coloured by regime, with
    the regime boundaries R = c log L. Right: R per head at the full length, by layer."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c_eff, c_thr = theory.EFFICIENT_C, theory.THRESHOLD_C
    heads = report["heads"]
    pts = list(report.get("sweep") or []) + [
        {"log_L": h["log_L"], "R": h["R"], "regime": h.get("regime")} for h in heads
    ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1, 1.3]})
    rng = np.random.default_rng(0)
    for reg in REGIMES:
        sel = [p for p in pts if p.get("regime") == reg]
        if sel:
            x = np.array([p["log_L"] for p in sel]) + rng.uniform(-0.04, 0.04, len(sel))
            ax1.scatter(
                x, [p["R"] for p in sel], s=12, alpha=0.7, c=REGIME_COLOURS.get(reg, "tab:gray"), label=reg
            )
    xs = np.linspace(min(p["log_L"] for p in pts) - 0.2, max(p["log_L"] for p in pts) + 0.2, 50)
    for c, ls in ((c_eff, "--"), (c_thr, ":")):
        for ax in (ax1,):
            ax.plot(xs, c * xs, "k" + ls, lw=1, label=f"R = {c:g} log L")
    ax1.set_yscale("log")
    ax1.set_xlabel("log L (natural)")
    ax1.set_ylabel("R = ||beta Q K^T||_inf per head")
    ax1.set_title("score range against log L")
    ax1.legend(fontsize=8)
    nh = max(h["head"] for h in heads) + 1
    lg = heads[0]["log_L"]
    for reg in REGIMES:
        sel = [h for h in heads if h.get("regime") == reg]
        if sel:
            ax2.scatter(
                [h["layer"] + (h["head"] + 0.5) / nh - 0.5 for h in sel],
                [h["R"] for h in sel],
                s=18,
                c=REGIME_COLOURS.get(reg, "tab:gray"),
                label=reg,
            )
    ax2.axhline(c_eff * lg, color="k", ls="--", lw=1, label=f"{c_eff:g} log L")
    ax2.axhline(c_thr * lg, color="k", ls=":", lw=1, label=f"{c_thr:g} log L")
    ax2.axhline(lg, color="gray", ls="-", lw=0.8, label=f"log L = {lg:.2f}")
    ax2.set_yscale("log")
    ax2.set_xticks(sorted({h["layer"] for h in heads}))
    ax2.set_xlabel("layer (heads spread within each layer)")
    ax2.set_ylabel("R")
    ax2.set_title(f"{report['model_type']} L={report['L']} scale={report['scale']:g}")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
