"""Composed paths of the reduction graph, the end-to-end routes, the CLI and the hardness bundle.

For every composable path k-SAT -> P (P = OV, Max-IP, Gap-Hamming, AAttC, AAttLGC, ALoRAGC):
decode(exact_solve(reduce(phi))) == python-sat(phi) and every decoded model satisfies phi.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import example, given, settings

from harness.checks.profiles import examples
from harness.cli import main
from harness.errors import HarnessError
from harness.io import load_instance
from reductions import sat_sources as S
from reductions.arrows.attention_to_gradient import AttentionToGradient
from reductions.arrows.gradient_to_lora import GradientToLoRA
from reductions.arrows.ov_to_attention import (
    GapHammingToAttentionAS23,
    OVToAttentionG1Layout,
    OVToAttentionP1,
)
from reductions.arrows.ov_to_gadgets import OVToGapHamming, OVToMaxIP
from reductions.arrows.ov_to_gradient import OVToGradientG1
from reductions.arrows.sat_to_ov import SatToOV
from reductions.chain import VIAS, solve_sat
from reductions.graph import build_graph, compose, describe, paths
from reductions.problems import attention as att
from reductions.problems import attention_gradient as agr
from reductions.problems.gadgets import solve_gap_hamming, solve_maxip
from reductions.problems.lora import lora_oracle
from reductions.problems.ov import solve_ov
from tests.reductions.helpers import WIDE_RANGE, assert_agrees, cnfs


def _log_space_oracle(inst):
    return att.AttentionSolution(info={"log_col0": att.log_attention_column(inst)})


def _frob_oracle(inst):
    return att.AttentionSolution(frob2=float(np.square(att.exact_attention(inst)).sum()))


# exact oracles per final problem (the AS23 layout can only be evaluated in log space)
EXACT = {
    "OV": lambda x: solve_ov(x),
    "Max-IP": lambda x: solve_maxip(x),
    "Gap-Hamming": lambda x: solve_gap_hamming(x),
    "AAttLGC": agr.exact_oracle,
    "ALoRAGC": lora_oracle("closed-form"),
}


def _attention_oracle(path):
    last = path[-1]
    if isinstance(last, GapHammingToAttentionAS23):
        return _log_space_oracle
    if isinstance(last, OVToAttentionG1Layout):
        return _frob_oracle
    return att.exact_oracle


def _cheap_graph():
    """The default graph with a cheap quadrature (tiny N needs few nodes) for the property test."""
    arrows = [
        SatToOV(),
        OVToMaxIP(),
        OVToGapHamming(),
        OVToAttentionP1(),
        GapHammingToAttentionAS23(),
        OVToAttentionG1Layout(),
        OVToGradientG1(),
        OVToGradientG1(zero_E=True),
        AttentionToGradient("gauss-legendre", panels=2, order=12),
        GradientToLoRA("cross", "C1"),
        GradientToLoRA("self", "C2"),
    ]
    return build_graph(arrows)


def _all_paths(G):
    out = []
    for target in ("OV", "Max-IP", "Gap-Hamming", "AAttC", "AAttLGC", "ALoRAGC"):
        out += [p for p in paths(G, "k-SAT", target) if not any(a.fails for a in p)]
    return out


@given(cnfs(max_v=6, max_m=24))
@example(WIDE_RANGE)  # the cheap quadrature's 2 x 12 nodes alone were too few (score range 111)
@settings(max_examples=examples(12))
def test_every_composed_path_decides(cnf):
    G = _cheap_graph()
    ps = _all_paths(G)
    assert len(ps) >= 10
    for p in ps:
        if cnf.m == 0 and any(isinstance(a, GapHammingToAttentionAS23) for a in p):
            continue  # the AS23 layout needs m >= 1
        comp = compose(p)
        last = p[-1].target
        oracle = _attention_oracle(p) if last == "AAttC" else EXACT[last]
        assert_agrees(cnf, comp.solve(cnf, oracle))
        if not any(a.extra_calls != "0" for a in p):  # one-shot: decode(oracle(reduce(phi)))
            target = comp.reduce(cnf)
            assert_agrees(cnf, comp.decode(target, oracle(target)))


def test_default_graph_and_text(tmp_path):
    G = build_graph()
    text = describe(G)
    for name in ("split-and-list", "P1", "AS23", "G1", "G1-E0", "AS24-left-riemann", "AppD-self-q+k+v"):
        assert name in text
    assert len(paths(G, "k-SAT", "ALoRAGC")) == 16
    with pytest.raises(HarnessError):
        compose(["P1", "AS24-gauss-legendre"])  # P1 needs T; the calculus route gives only ||T||_F^2


@given(cnfs(max_v=10, max_m=40))
@settings(max_examples=examples(6))
def test_routes_with_harness_solvers(cnf):
    for via in VIAS:
        for solver, dtype in (("closed-form", "float64"), ("streaming", "float32")):
            run = solve_sat(cnf, via, solver, dtype)
            assert_agrees(cnf, run.model)


def test_route_variants():
    for cnf in (S.planted(3, 9, seed=3), S.unsat(3, 9, seed=3)):
        for kw in ({"variant": "g1-e0"}, {"form": "self", "adapt": "C2"}, {"adapt": "C1-q"}):
            assert_agrees(cnf, solve_sat(cnf, "lora", "autograd", "float64", **kw).model)
        assert_agrees(cnf, solve_sat(cnf, "attention", "autograd", "float32", tau="d").model)


def test_structured_sources_and_k_ladder_through_the_chain():
    """CNFgen families (UNSAT: Tseitin with odd charge, pigeonhole; colouring) and the k-ladder
    k = 3, 4, 5, decided through the LoRA route with a float32 oracle."""
    formulas = [S.tseitin(8, 3, seed=2), S.pigeonhole(4, 3), S.coloring(5, 0.5, 3, seed=3)]
    formulas += S.k_ladder(10, seed=2)
    for cnf in formulas:
        assert_agrees(cnf, solve_sat(cnf, "lora", "streaming", "float32").model)


def test_cli_solve_sat(tmp_path, capsys):
    for cnf, answer in ((S.planted(3, 10, seed=1), "SAT"), (S.unsat(3, 10, seed=1), "UNSAT")):
        path = tmp_path / f"{answer}.cnf"
        S.write_dimacs(cnf, path)
        for via in VIAS:
            assert (
                main(["solve-sat", str(path), "--via", via, "--solver", "streaming", "--dtype", "float32"])
                == 0
            )
            lines = capsys.readouterr().out.splitlines()
            assert answer in lines
            if answer == "SAT":
                vline = next(x for x in lines if x.startswith("v "))
                lits = [int(t) for t in vline.split()[1:-1]]
                assert cnf.satisfies(tuple(x > 0 for x in lits))
    bad = tmp_path / "bad.cnf"
    bad.write_text("p cnf 2 1\n1 x 0\n")
    assert main(["solve-sat", str(bad)]) == 2
    assert "bad.cnf:2" in capsys.readouterr().err
    assert main(["solve-sat", str(path), "--solver", "no-such-solver"]) == 2


def test_cli_bundle_and_graph(tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(["generate", "sat-chain", "--k", "3", "--vars", "8", "--seed", "1", "--out", str(out)]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["answer"] == "SAT" and meta["N"] == 16
    for name, info in meta["files"].items():
        assert (out / name).exists()
        if info["problem"] in ("AAttC", "AAttLGC", "ALoRAGC"):
            load_instance(out / name)
    g1 = meta["files"]["gradient_g1.npz"]
    assert g1["required_accuracy"] > 0 and g1["B"] > 0
    assert main(["solve-sat", str(out / "formula.cnf"), "--via", "lora"]) == 0
    assert "SAT" in capsys.readouterr().out.splitlines()
    png = tmp_path / "g.png"
    assert main(["reductions", "--png", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    # same seed, same bundle bytes
    out2 = tmp_path / "bundle2"
    assert main(["generate", "sat-chain", "--k", "3", "--vars", "8", "--seed", "1", "--out", str(out2)]) == 0
    for name in meta["files"]:
        assert (out / name).read_bytes() == (out2 / name).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("v", [20, 24])
@pytest.mark.parametrize("kind", ["planted", "unsat"])
def test_end_to_end_large(v, kind):
    cnf = S.planted(3, v, seed=1) if kind == "planted" else S.unsat(3, v, seed=1)
    for via in VIAS:
        assert_agrees(cnf, solve_sat(cnf, via, "streaming", "float32").model)
