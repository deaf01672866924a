"""Per-head analysis of captured attention (harness.audit) against the theory, and its reports:
terminal table, JSON, plot.

Per head: L, R = ||beta Q K^T||_inf of the pretrained head (docs/theory.md §4.1, §5.1; over the
unmasked entries for causal heads), the paper's Gamma quantities (Thm 3.1, Thm 4.1,
harness.theory.paper_gammas), the regime (harness.theory.regime), the Taylor degree/feature rank
`poly` needs for an absolute max-norm gradient error eps on the head's LoRA instance
(harness.theory.certify, docs/theory.md §4.1-§4.2) and the kernel-only degree for relative error eps, the
predicted cost of `poly` against the exact closed form (op counts), and the measured max-norm gradient
error of `poly` and `random-features` against `closed-form`. Causal (decoder) heads are causal Instances,
so every solver and the certificate apply the mask and they get the same analysis.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness import theory
from harness.audit.capture import LayerCapture, capture, find_attention, scale_queries
from harness.audit.heads import direct_gammas, head_forward, head_instance, score_range_masked
from harness.audit.loading import load_model, read_text, tokenize
from harness.errors import HarnessError
from harness.io import save_instance

UNBOUNDED_RANK = 10**300


def _log10_int(n: int) -> float:
    return math.log10(n) if n < 10**300 else len(str(n)) - 1 + math.log10(int(str(n)[:15]) / 1e14)


def measure_gradients(
    inst,
    eps: float,
    max_rank: int,
    rf_m: int,
    seed: int,
    solvers: Sequence[str] = ("poly", "random-features"),
) -> dict[str, Any]:
    """Max-norm gradient errors of the approximate solvers against `closed-form` (float64) on `inst`
    (Hu et al. (arXiv:2406.03136) Problem 1 criterion; docs/theory.md §2.2). `poly` refusals (HarnessError)
    are recorded, not raised."""
    from harness.solvers import get_solver

    t0 = time.perf_counter()
    ref = get_solver("closed-form").solve(inst, dtype="float64", device="cpu")
    out: dict[str, Any] = {
        "loss": ref.loss,
        "ops_exact": ref.ops,
        "grad_inf": max(float(np.abs(g).max()) for g in ref.grads.values()),
        "seconds_exact": time.perf_counter() - t0,
    }
    for name in solvers:
        s = get_solver(name)
        opts: dict[str, Any] = {}
        if name == "poly":
            opts = {"eps": eps, "max_rank": max_rank}
        elif name == "random-features":
            opts = {"m": rf_m, "seed": seed}
        opts = {k: v for k, v in opts.items() if k in s.options}
        t0 = time.perf_counter()
        try:
            res = s.solve(inst, dtype="float64", device="cpu", **opts)
        except HarnessError as exc:
            out[name] = {"status": "refused", "message": str(exc), "options": opts}
            continue
        rec = {
            "status": "ok",
            "options": opts,
            "seconds": time.perf_counter() - t0,
            "ops": res.ops,
            "abs_err": res.max_abs_error(ref),
            "rel_err": res.max_rel_error(ref),
        }
        if res.info.get("nonfinite"):
            rec.update(status="nonfinite", abs_err=math.inf, rel_err=math.inf)
        if name == "poly":
            rec["meets_eps"] = bool(rec["abs_err"] <= eps)
            if res.certificate:
                rec["certificate"] = {
                    k: res.certificate.get(k)
                    for k in ("degree", "rank", "error_bound", "eps_rel", "R")
                    if k in res.certificate
                }
        out[name] = rec
    return out


def analyse_head(
    cap: LayerCapture,
    h: int,
    *,
    eps: float = 1e-6,
    max_rank: int = 20000,
    construction: str = "projected",
    r: int = 2,
    seed: int = 0,
    lora_scale: float = 0.05,
    perturb: float = 0.01,
    gradients: bool = True,
    rf_m: int = 256,
    save_dir: Path | None = None,
    scale: float = 1.0,
) -> dict[str, Any]:
    """One row of the audit (module doc)."""
    R = score_range_masked(cap, h)
    rec: dict[str, Any] = {
        "layer": cap.index,
        "head": h,
        "module": cap.name,
        "causal": cap.causal,
        "L": cap.L,
        "log_L": math.log(max(cap.L, 2)),
        "d_head": cap.d_head,
        "beta": cap.beta,
        "R": R,
        "direct": direct_gammas(cap, h),
    }
    inst = head_instance(
        cap,
        h,
        construction=construction,
        r=r,
        seed=seed,
        lora_scale=lora_scale,
        perturb=perturb,
        meta={"scale": scale},
    )
    rec["d"] = inst.d
    rec["gammas"] = theory.paper_gammas(inst)
    g_rel = theory.taylor_degree(R, eps)
    rec["kernel_degree"] = g_rel
    rec["kernel_rank_log10"] = _log10_int(theory.feature_rank(inst.d, g_rel))
    # certified need for an absolute gradient error eps on the LoRA instance (no rank cap)
    cert = theory.certify(inst, eps=eps, max_rank=UNBOUNDED_RANK, R=R)
    rec["R_lora"] = cert["R"]
    # one score range and one rule with the solvers and the study (theory.certificate_score_range,
    # theory.classify: R against log L and the predicted cost at this L); the head's own R against
    # log L alone is "regime_R"
    rec["regime"] = cert["regime"]
    rec["regime_reason"] = cert.get("regime_reason")
    rec["regime_R"] = theory.regime(R, cap.L)
    rec["degree"] = int(cert["degree"])
    # False: no degree up to rank 1e12 meets eps; degree, rank, ops, cost_ratio and break_even_L are
    # then lower bounds (the report prints them with >=)
    rec["degree_found"] = bool(cert.get("degree_found", True))
    rec["rank_log10"] = _log10_int(int(cert["rank"]))
    rec["rank"] = int(cert["rank"]) if cert["rank"] < 2**63 else None
    rec["error_bound"] = cert["error_bound"]
    rec["ops_poly"] = float(cert["ops"])
    rec["within_max_rank"] = int(cert["rank"]) <= max_rank
    from harness.solvers import get_solver

    if gradients:
        rec["grad"] = measure_gradients(inst, eps, max_rank, rf_m, seed)
        rec["ops_exact"] = rec["grad"]["ops_exact"]
    else:
        rec["ops_exact"] = get_solver("closed-form").solve(inst).ops
        rec["grad"] = None
    if rec["ops_exact"]:
        rec["cost_ratio"] = rec["ops_poly"] / rec["ops_exact"]
        # exact is O(L^2 d), poly O(L k d) at fixed degree: the ratio falls like 1/L, so poly would
        # break even at about L * cost_ratio tokens (same R, d and degree)
        rec["break_even_L"] = cap.L * rec["cost_ratio"]
    if save_dir is not None:
        path = Path(save_dir) / f"layer{cap.index:02d}_head{h:02d}.npz"
        save_instance(inst, path)
        rec["instance"] = str(path)
    return rec


def length_sweep(model, ids: Sequence[int], lengths: Sequence[int], layers, specs) -> list[dict]:
    """R of every head on prefixes of the text (norms only): the data of the R-against-log L plot."""
    rows = []
    for n in sorted(set(int(x) for x in lengths if 2 <= int(x) < len(ids))):
        for cap in capture(model, list(ids[:n]), layers=layers, specs=specs):
            for h in range(cap.n_heads):
                R = score_range_masked(cap, h)
                rows.append(
                    {
                        "L": n,
                        "log_L": math.log(n),
                        "layer": cap.index,
                        "head": h,
                        "R": R,
                        "regime": theory.regime(R, n),
                    }
                )
    return rows


def summarise(heads: list[dict], eps: float) -> dict[str, Any]:
    """Regime counts, per-layer R ranges, error extremes."""
    out: dict[str, Any] = {"heads": len(heads)}
    out["regimes"] = dict(Counter(h["regime"] for h in heads if h.get("regime")))
    out["regimes_R"] = dict(Counter(h["regime_R"] for h in heads if h.get("regime_R")))
    Rs = np.array([h["R"] for h in heads])
    out["R_min"], out["R_median"], out["R_max"] = float(Rs.min()), float(np.median(Rs)), float(Rs.max())
    out["log_L"] = heads[0]["log_L"]
    for key in ("R_centred", "R_pos", "gamma_QK"):
        v = np.array([h["direct"][key] for h in heads])
        out[f"{key}_min"], out[f"{key}_median"], out[f"{key}_max"] = (
            float(v.min()),
            float(np.median(v)),
            float(v.max()),
        )
    out["largest_score_negative"] = sum(h["direct"]["R_sign"] == "-" for h in heads)
    out["per_layer"] = []
    for layer in sorted({h["layer"] for h in heads}):
        hs = [h for h in heads if h["layer"] == layer]
        r = np.array([h["R"] for h in hs])
        out["per_layer"].append(
            {
                "layer": layer,
                "R_min": float(r.min()),
                "R_median": float(np.median(r)),
                "R_max": float(r.max()),
                "X_inf": hs[0]["direct"]["X_inf"],
                "regimes": dict(Counter(h["regime"] for h in hs if h.get("regime"))),
            }
        )
    grads = [h["grad"] for h in heads if h.get("grad")]
    for name in ("poly", "random-features"):
        recs = [g[name] for g in grads if name in g]
        if not recs:
            continue
        st = Counter(r["status"] for r in recs)
        ok = [r for r in recs if r["status"] == "ok"]
        s = {"status": dict(st)}
        if ok:
            s["abs_err_max"] = max(r["abs_err"] for r in ok)
            s["rel_err_max"] = max(r["rel_err"] for r in ok)
            s["rel_err_median"] = float(np.median([r["rel_err"] for r in ok]))
            if name == "poly":
                s["meets_eps"] = sum(bool(r.get("meets_eps")) for r in ok)
        out[name] = s
    if grads:
        out["grad_inf_median"] = float(np.median([g["grad_inf"] for g in grads]))
    return out


def run_audit(
    model_dir,
    text: str | None = None,
    *,
    layers=None,
    max_tokens: int | None = 256,
    scale: float = 1.0,
    scale_on: str = "q",
    eps: float = 1e-6,
    max_rank: int = 20000,
    construction: str = "projected",
    r: int = 2,
    seed: int = 0,
    rf_m: int = 256,
    gradients: bool = True,
    lengths: Sequence[int] = (),
    save_dir=None,
    model=None,
    tokenizer=None,
    input_ids: Sequence[int] | None = None,
    check_tol: float = 1e-5,
) -> dict[str, Any]:
    """The whole audit: load (or take `model`), tokenize, scale the queries, capture, analyse, sweep."""
    if model is None:
        model, tokenizer = load_model(model_dir)
    specs = find_attention(model)
    scale_queries(specs, scale, on=scale_on)
    if input_ids is None:
        text = read_text(None) if text is None else text
        input_ids, tok_kind = tokenize(text, tokenizer, int(model.config.vocab_size), max_tokens)
    else:
        input_ids, tok_kind = list(input_ids)[: max_tokens or None], "ids"
    if save_dir is not None:
        from harness.fsio import make_folder

        save_dir = make_folder(save_dir, "instance folder")
    caps = capture(model, input_ids, layers=layers, specs=specs)
    heads, repro = [], 0.0
    for cap in caps:
        for h in range(cap.n_heads):
            repro = max(repro, float(np.abs(head_forward(cap, h) - cap.head_output(h)).max()))
            heads.append(
                analyse_head(
                    cap,
                    h,
                    eps=eps,
                    max_rank=max_rank,
                    construction=construction,
                    r=r,
                    seed=seed,
                    gradients=gradients,
                    rf_m=rf_m,
                    save_dir=save_dir,
                    scale=scale,
                )
            )
    if repro > check_tol * max(1.0, max(float(np.abs(c.out).max()) for c in caps)):
        raise HarnessError(
            f"captured heads do not reproduce the model's attention output "
            f"(max error {repro:.3g}); the architecture is not read correctly"
        )
    sweep = length_sweep(model, input_ids, lengths, layers, specs) if lengths else []
    config = model.config
    report = {
        "model": str(model_dir) if model_dir else type(model).__name__,
        "model_type": getattr(config, "model_type", None),
        "tokenizer": tok_kind,
        "L": len(input_ids),
        "log_L": math.log(len(input_ids)),
        "scale": scale,
        "scale_on": scale_on,
        "eps": eps,
        "max_rank": max_rank,
        "construction": construction,
        "lora_rank": r,
        "seed": seed,
        "rf_m": rf_m,
        "layers": sorted({c.index for c in caps}),
        "attention_layers": len(specs),
        "causal": any(c.causal for c in caps),
        "reproduction_max_err": repro,
        "heads": heads,
        "sweep": sweep,
    }
    report["summary"] = summarise(heads, eps)
    return report
