"""Figures of the scaling study (matplotlib, Agg backend, PNG and SVG), drawn from the report dict
that `harness.report.analyse` computes from the stored table only.

* time_vs_L: median time against L (log-log), min-max bars over repeats, fitted line over the fitted
  range with slope and 95% CI in the legend, the crossover L* of poly against the best exact solver.
* error_vs_L: measured max-norm gradient error of the approximate solvers, poly's certified bound and
  the 1/poly(L) target eps = 1/L.
* phase: heat maps over (L, c) for Γ = c sqrt(log L): rank the polynomial method needs for eps = 1/L,
  measured relative error at the fixed rank budget, predicted poly/exact op ratio.
* speedup: poly against the exact closed form as r and d vary; crossover: L* against d.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.measure.fit import predict  # noqa: E402

#: the crossover plot draws L* and its CI clipped to [1, L_CAP] (far extrapolations reach 1e28 and more)
L_CAP = 2.0**64


def _capped(v: float) -> float:
    return min(max(v, 1.0), L_CAP)


_STYLE = {
    "closed-form": ("C0", "o"),
    "streaming": ("C1", "s"),
    "autograd": ("C2", "^"),
    "poly": ("C3", "D"),
    "poly@eps=1/L": ("C4", "v"),
    "poly-chained": ("C5", "P"),
    "random-features": ("C6", "X"),
}


def _save(fig, out: Path, name: str) -> str:
    """figures/NAME.png and .svg, each rendered in memory and written atomically (harness.fsio)."""
    import io

    from harness.fsio import make_folder, write_bytes

    fig_dir = make_folder(out / "figures", "figure folder")
    for ext, kw in (("png", {"dpi": 120}), ("svg", {})):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, bbox_inches="tight", **kw)
        write_bytes(fig_dir / f"{name}.{ext}", buf.getvalue())
    plt.close(fig)
    return f"figures/{name}.png"


def _style(name: str, i: int):
    return _STYLE.get(name, (f"C{7 + i % 3}", "o"))


def plot_time(rep: dict, out: Path) -> str | None:
    series = rep["scaling"]["series"]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    for i, (name, s) in enumerate(series.items()):
        col, mk = _style(name, i)
        L = np.array([p["L"] for p in s["points"]], float)
        med = np.array([p["median"] for p in s["points"]])
        lo = med - np.array([p["min"] for p in s["points"]])
        hi = np.array([p["max"] for p in s["points"]]) - med
        f = s["time_fit"]
        label = (
            name if f is None else f"{name}: slope {f['exponent']:.2f} [{f['ci'][0]:.2f}, {f['ci'][1]:.2f}]"
        )
        c = rep["scaling"]["crossover_vs_best_exact"].get(name)
        if c and c.get("x_star"):
            label += f", L*≈{c['x_star']:.0f}" + (" (extrap.)" if c["extrapolated"] else "")
        ax.errorbar(
            L,
            med,
            yerr=[lo, hi],
            fmt=mk,
            color=col,
            ms=5,
            capsize=2,
            label=label,
            mfc="none" if not s["exact"] else col,
        )
        if f is not None:
            xs = np.geomspace(f["x_range"][0], f["x_range"][1], 20)
            ax.plot(xs, predict(f, xs), "-", color=col, lw=1.2, alpha=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    clock = {"process": "CPU (process) time", "wall": "wall time"}.get(rep["config"].get("clock"), "time")
    if str(rep["config"].get("device", "")).startswith("cuda"):
        clock = "GPU time (CUDA events)"
    ax.set_ylabel(f"median {clock} per gradient [s]")
    cfg = rep["config"]
    ax.set_title(
        f"Time vs L (bounded family, d={cfg.get('d')}, r={cfg.get('r')}, Γ={cfg.get('gamma')}; "
        f"lines: fitted range)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        title_fontsize=8,
        title="solver: fitted exponent [95% CI],\ncrossover L* with the best exact solver",
    )
    return _save(fig, out, "time_vs_L")


def plot_error(rep: dict, out: Path) -> str | None:
    series = {n: s for n, s in rep["scaling"]["series"].items() if not s["exact"]}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    allL = []
    ref_max = 0
    for i, (name, s) in enumerate(series.items()):
        col, mk = _style(name, i)
        pts = [p for p in s["points"] if p["max_abs_error"] is not None]
        L = [p["L"] for p in s["points"]]
        allL += L
        ranks = {p.get("rank") for p in s["points"]}
        if len(ranks) == 1 and None not in ranks:
            name = f"{name} (fixed rank k={ranks.pop()})"
        if pts:
            ref_max = max(ref_max, max(p["L"] for p in pts))
            ax.plot(
                [p["L"] for p in pts],
                [max(p["max_abs_error"], 1e-17) for p in pts],
                mk + "-",
                color=col,
                label=f"{name}: measured max |error|",
            )
        b = [
            (p["L"], p["error_bound"]) for p in s["points"] if isinstance(p.get("error_bound"), (int, float))
        ]
        if b:
            ax.plot(*zip(*b), mk + "--", color=col, mfc="none", alpha=0.7, label=f"{name}: certified bound")
    if allL:
        xs = np.geomspace(min(allL), max(allL), 20)
        ax.plot(xs, 1 / xs, "k-", lw=1.5, label="target eps = 1/L")
    ax.axhline(np.finfo(np.float64).eps, color="grey", ls=":", lw=1)
    ax.text(
        min(allL) if allL else 1,
        np.finfo(np.float64).eps * 1.5,
        "float64 unit roundoff",
        fontsize=8,
        color="grey",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("max-norm error of the adapter gradients")
    ax.set_title(
        f"Approximate solvers: error vs L (measured against the exact float64 closed form up to L={ref_max})",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    return _save(fig, out, "error_vs_L")


def plot_phase(rep: dict, out: Path) -> str | None:
    cells = rep["phase"]["cells"]
    if not cells:
        return None
    cs = sorted({p["c"] for p in cells})
    Ls = sorted({p["L"] for p in cells})
    grid = {(p["c"], p["L"]): p for p in cells}

    def mat(key, f=lambda v: v):
        M = np.full((len(cs), len(Ls)), np.nan)
        for i, c in enumerate(cs):
            for j, L in enumerate(Ls):
                p = grid.get((c, L))
                v = None if p is None else p.get(key)
                if isinstance(v, (int, float)) and v is not None and math.isfinite(v) and v > 0:
                    M[i, j] = f(v)
        return M

    panels = [
        ("rank", "log10 rank k needed for eps = 1/L", lambda p: f"{p['rank']:.3g}\ng={p['degree']}"),
        (
            "budget_max_rel_error",
            f"log10 rel. error at rank ≤ {cells[0]['budget_rank']}",
            lambda p: f"{p['budget_max_rel_error']:.0e}" if p["budget_max_rel_error"] is not None else "-",
        ),
        ("ops_ratio", "log10 (poly ops needed / exact ops)", lambda p: f"{p['ops_ratio']:.2g}"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, (key, title, txt) in zip(axes, panels):
        M = mat(key, np.log10)
        cmap = "RdBu_r" if key == "ops_ratio" else "viridis"
        kw = {}
        if key == "ops_ratio":
            lim = np.nanmax(np.abs(M)) if np.isfinite(M).any() else 1
            kw = {"vmin": -lim, "vmax": lim}
        im = ax.imshow(M, origin="lower", aspect="auto", cmap=cmap, **kw)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        norm = im.norm
        for i, c in enumerate(cs):
            for j, L in enumerate(Ls):
                p = grid.get((c, L))
                if p is None:
                    continue
                v = norm(M[i, j]) if np.isfinite(M[i, j]) else 0.5
                dark = (abs(v - 0.5) > 0.3) if key == "ops_ratio" else (v < 0.6)
                ax.text(
                    j,
                    i,
                    txt(p) + ("" if p["regime"] == "efficient" else f"\n{p['regime']}"),
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="w" if dark else "k",
                )
        ax.set_xticks(range(len(Ls)), [f"2^{int(round(math.log2(L)))}" for L in Ls])
        ax.set_yticks(range(len(cs)), [f"{c:g}" for c in cs])
        ax.set_xlabel("L")
        ax.set_ylabel("c  (Γ = c·sqrt(log L))")
        ax.set_title(title, fontsize=10)
    d = cells[0]["d"]
    fig.suptitle(
        f"Phase transition of the polynomial method (threshold family, d={d}); "
        "cell labels: regime when not 'efficient' (R vs log L)",
        fontsize=11,
    )
    fig.tight_layout()
    return _save(fig, out, "phase_heatmap")


def plot_speedup(rep: dict, out: Path) -> str | None:
    if not rep["rank"] and not rep["dim"]:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    if rep["rank"]:
        r = [x["r"] for x in rep["rank"]]
        ax.plot(r, [x["speedup"] for x in rep["rank"]], "o-", label="time")
        ax.plot(r, [x["ops_speedup"] for x in rep["rank"]], "s--", mfc="none", label="op count")
        ax.set_xscale("log", base=2)
        L = rep["config"].get("rank_L")
        ax.set_title(
            f"speedup vs LoRA rank r (d={rep['config'].get('rank_d')}, L=2^{L}, poly rank "
            f"k={rep['rank'][0]['poly_rank']})",
            fontsize=10,
        )
    ax.set_xlabel("LoRA rank r")
    ax2 = axes[1]
    if rep["dim"]:
        dd = [x["d"] for x in rep["dim"]]
        ax2.plot(dd, [x["speedup_at_max_L"] for x in rep["dim"]], "o-", label="time")
        ax2.plot(dd, [x["ops_speedup_at_max_L"] for x in rep["dim"]], "s--", mfc="none", label="op count")
        ax2.set_title(
            f"speedup vs head dim d (L={rep['dim'][0]['L'][-1]}, eps={rep['config'].get('dim_eps')}: "
            "k grows with d)",
            fontsize=10,
        )
        for x in rep["dim"]:
            ax2.annotate(
                f"k={x['poly_rank']}",
                (x["d"], x["speedup_at_max_L"]),
                textcoords="offset points",
                xytext=(5, 5),
                fontsize=8,
            )
    ax2.set_xlabel("head dimension d")
    for a in axes:
        if not a.get_legend_handles_labels()[0]:
            a.text(0.5, 0.5, "group not run", ha="center", va="center", transform=a.transAxes)
            a.set_xticks([])
            a.set_yticks([])
            continue
        a.set_yscale("log")
        a.axhline(1, color="k", lw=0.8)
        a.set_ylabel("exact closed-form / poly")
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out, "speedup")


def plot_crossover(rep: dict, out: Path) -> str | None:
    rows = [x for x in rep["dim"] if x["crossover"].get("x_star")]
    if not rep["dim"]:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for key, col, lab in (("crossover", "C3", "L* from time"), ("ops_crossover", "C0", "L* from op counts")):
        rr = [x for x in rep["dim"] if x[key].get("x_star")]
        for x in rr:
            c = x[key]
            lo, hi = c["ci"] if c.get("ci") else (c["x_star"], c["x_star"])
            # far extrapolations (CI ends of 1e28 and more on tiny grids) are drawn at the axis cap: a
            # log2 axis over them overflows matplotlib's exp2; the report's tables keep the numbers
            xs, lo, hi = (_capped(v) for v in (c["x_star"], lo, hi))
            ax.errorbar(
                [x["d"]],
                [xs],
                yerr=[[xs - lo], [hi - xs]],
                fmt="o",
                color=col,
                capsize=3,
                mfc="none" if c["extrapolated"] else col,
            )
        ys = [_capped(x[key]["x_star"]) for x in rr]
        ax.plot([x["d"] for x in rr], ys, "-", color=col, alpha=0.6, label=lab)
    if rows:
        lo, hi = rows[0]["L"][0], rows[0]["L"][-1]
        ax.axhspan(lo, hi, color="grey", alpha=0.15, label="measured L range (hollow: extrapolated)")
    ax.set_yscale("log", base=2)
    ax.set_xlabel("head dimension d")
    ax.set_ylabel("crossover L* (poly faster above)")
    ax.set_title(
        f"Crossover of poly (eps={rep['config'].get('dim_eps')}) with the exact closed form", fontsize=10
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, "crossover_vs_d")


def draw_all(rep: dict, out: str | Path) -> dict[str, str]:
    """Draw every figure the report has data for; returns {key: relative PNG path}."""
    out = Path(out)
    figs = {}
    for key, fn in (
        ("time", plot_time),
        ("error", plot_error),
        ("phase", plot_phase),
        ("speedup", plot_speedup),
        ("crossover", plot_crossover),
    ):
        p = fn(rep, out)
        if p:
            figs[key] = p
    return figs
