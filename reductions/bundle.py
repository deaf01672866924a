"""The hardness bundle of one formula: the DIMACS file, every intermediate instance of the SETH chain
(OV, the Max-IP / Gap-Hamming gadgets, attention by P1 and AS23, the attention gradient by G1 and its
E = 0 variant, the LoRA embeddings) and metadata.json with the known answer (`lora-harness generate
sat-chain`).

Written all or nothing: the files go into a temporary folder beside `out`, which is then swapped in
whole (harness.fsio.replace_dir); a killed run leaves the old bundle as it was, and regenerating at
another size leaves no file of the old formula behind. Only an empty folder or an earlier bundle
(metadata.json names this generator) is replaced."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

GENERATOR = "lora-harness generate sat-chain"


def is_bundle(folder: str | os.PathLike) -> bool:
    """Is `folder` a sat-chain bundle (its metadata.json names this generator)?"""
    try:
        meta = json.loads((Path(folder) / "metadata.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("generator") == GENERATOR


def write_bundle(
    cnf, out: str | os.PathLike, dtype: str = "float64", as23: bool | None = None, max_memory=None
) -> dict:
    """Write the hardness bundle of one formula to folder `out`, all or nothing (module docstring);
    returns the metadata. The chain's memory is checked (harness.memguard) before the formula is
    solved or reduced."""
    from harness.errors import HarnessError
    from harness.fsio import check_replaceable, replace_dir
    from harness.memguard import MemoryLimit
    from reductions.sizes import chain_memory

    if cnf.m == 0:
        raise HarnessError("the formula has no clauses; the chain needs at least one (m >= 1)")
    check_replaceable(out, is_bundle, "bundle")
    N = 1 << ((cnf.nvars + 1) // 2)
    as23 = (N <= 256) if as23 is None else as23  # 2N x 12m floats: keep bundles small
    MemoryLimit.resolve(max_memory).check(
        chain_memory(cnf.nvars, cnf.m, as23), f"the sat-chain bundle of v={cnf.nvars}, m={cnf.m} (N = {N})"
    )
    holder: dict = {}
    replace_dir(
        out, lambda tmp: holder.update(meta=_fill(cnf, tmp, dtype, as23)), is_ours=is_bundle, what="bundle"
    )
    return holder["meta"]


def _fill(cnf, out: Path, dtype: str, as23: bool | None) -> dict:
    """Every file of the bundle, written into the (new, empty) folder `out`; returns the metadata."""
    import numpy as np

    from harness.instance import meta_json
    from harness.io import atomic_write_bytes, atomic_write_text, npz_bytes, save_instance
    from reductions.arrows.gradient_to_lora import GradientToLoRA
    from reductions.arrows.ov_to_attention import GapHammingToAttentionAS23, OVToAttentionP1
    from reductions.arrows.ov_to_gadgets import OVToGapHamming, OVToMaxIP
    from reductions.arrows.ov_to_gradient import OVToGradientG1
    from reductions.arrows.sat_to_ov import SatToOV
    from reductions.problems import attention as att
    from reductions.problems import attention_gradient as agr
    from reductions.sat_sources import write_dimacs

    np_dtype = np.float32 if dtype == "float32" else np.float64
    answer = cnf.solve()
    files: dict[str, dict] = {}
    write_dimacs(
        cnf, out / "formula.cnf", comments=[f"lora-limits sat-chain {json.dumps(cnf.meta, sort_keys=True)}"]
    )
    files["formula.cnf"] = {"problem": "k-SAT", "v": cnf.nvars, "m": cnf.m}

    ov = SatToOV().reduce(cnf)
    atomic_write_bytes(out / "ov.npz", npz_bytes(ov.arrays()))
    files["ov.npz"] = {
        "problem": "OV",
        "N": ov.N,
        "m": ov.m,
        "entries": "{0,1}",
        "orthogonal": answer is not None,
    }
    mip = OVToMaxIP().reduce(ov)
    gh = OVToGapHamming().reduce(ov)
    atomic_write_bytes(out / "maxip.npz", npz_bytes(mip.arrays()))
    atomic_write_bytes(out / "gap_hamming.npz", npz_bytes(gh.arrays()))
    files["maxip.npz"] = {"problem": "Max-IP", "N": ov.N, "D": 3 * ov.m, "target": mip.target}
    files["gap_hamming.npz"] = {"problem": "Gap-Hamming", "N": ov.N, "D": 6 * ov.m, "t": gh.t, "eps": gh.eps}

    p1a = OVToAttentionP1()
    p1 = p1a.reduce(ov)
    save_instance(att.to_instance(p1, np_dtype), out / "attention_p1.npz")
    files["attention_p1.npz"] = {
        "problem": "AAttC",
        "layout": "P1",
        "n": p1.n,
        "d": p1.d,
        **p1.bounds(),
        "score_range_R": p1.meta["score_range"],
        "beta": p1.meta["beta"],
        "yes_lb": p1.meta["yes_lb"],
        "no_ub": p1.meta["no_ub"],
        "required_accuracy": p1a.required_accuracy(p1),
    }
    if as23:
        a23 = GapHammingToAttentionAS23().reduce(gh)
        save_instance(att.to_instance(a23, np.float64), out / "attention_as23.npz")
        files["attention_as23.npz"] = {
            "problem": "AAttC",
            "layout": "AS23",
            "n": a23.n,
            "d": a23.d,
            **a23.bounds(),
            "log10_yes_value": a23.meta["log10_yes_lb"],
            "note": "underflows float64 below 1e-308: evaluate in log space",
        }
    for variant, zero in (("g1", False), ("g1_e0", True)):
        arrow = OVToGradientG1(zero_E=zero)
        g = arrow.reduce(ov)
        name = f"gradient_{variant}.npz"
        save_instance(agr.to_instance(g, np_dtype), out / name)
        b = g.bounds()
        files[name] = {
            "problem": "AAttLGC",
            "layout": arrow.name,
            "n": g.n,
            "d": g.d,
            "B": b["B"],
            "score_range_R": b["score_range"],
            "readout": g.meta["readout"],
            "yes_lb": g.meta["yes_lb"],
            "no_ub": g.meta["no_ub"],
            "threshold": g.meta["threshold"],
            "required_accuracy": g.meta["eps_needed"],
            "spec_accuracy": g.meta["eps_spec"],
            "realised_as": "Instance, adapter on q only, r = d (dA_q = dL/dX)",
        }
        if not zero:
            for form, adapt in (("cross", "C1"), ("cross", "C2"), ("self", "C1"), ("self", "C2")):
                lo = GradientToLoRA(form, adapt)
                x = lo.reduce(g)
                name = f"lora_{form}_{adapt}.npz"
                save_instance(
                    x.inst.replace(**{k: v.astype(np_dtype) for k, v in x.inst.arrays.items()}), out / name
                )
                files[name] = {
                    "problem": "ALoRAGC",
                    "embedding": lo.name,
                    "L": x.inst.L,
                    "d": x.inst.d,
                    "r": x.inst.r,
                    "adapt": list(x.inst.adapted),
                    "alpha": x.inst.alpha,
                    "beta": x.inst.beta,
                    **x.bounds(),
                    "readout": "dA_q[m, m+1] (r/alpha scale)",
                    "required_accuracy": lo.required_accuracy(x),
                }
    meta = {
        "generator": GENERATOR,
        "formula": {"v": cnf.nvars, "m": cnf.m, **cnf.meta},
        "answer": "SAT" if answer is not None else "UNSAT",
        "answer_source": "python-sat (cadical153)",
        "model": None if answer is None else "".join("1" if b else "0" for b in answer),
        "N": ov.N,
        "n": 2 * ov.N,
        "log2_N": int(math.log2(ov.N)) if ov.N else 0,
        "dtype": dtype,
        "files": files,
    }
    atomic_write_text(
        out / "metadata.json", json.dumps(json.loads(meta_json(meta)), indent=2, sort_keys=True) + "\n"
    )
    return meta
