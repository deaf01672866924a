"""The graph of problems and reductions (a networkx MultiDiGraph, itself a DiGraph): nodes are
problems, edges are arrows (key = arrow name, attribute `arrow`). A path composes into one
end-to-end reduction (`compose`), whose `solve(source, oracle)` only needs an oracle for the last
problem of the path.

Two arrows compose when the first one's decoder accepts what the second one's decoder gives
(`Arrow.needs` / `Arrow.gives`): e.g. the P1 decoder needs the full attention output T, which the
calculus route (it gives only ||Att||_F^2) cannot provide; such paths are left out of `paths`.
"""

from __future__ import annotations

import networkx as nx

from harness.errors import HarnessError
from reductions.arrows.attention_to_gradient import AttentionToGradient
from reductions.arrows.base import Arrow, Composite
from reductions.arrows.gradient_to_lora import GradientToLoRA
from reductions.arrows.ov_to_attention import (
    GapHammingToAttentionAS23,
    OVToAttentionG1Layout,
    OVToAttentionP1,
)
from reductions.arrows.ov_to_gadgets import OVToGapHamming, OVToMaxIP
from reductions.arrows.ov_to_gradient import OVToGradientG1
from reductions.arrows.sat_to_ov import SatToOV

PROBLEMS = {
    "k-SAT": "k-CNF satisfiability (a model or UNSAT)",
    "OV": "orthogonal vectors, N vectors per side in {0,1}^m",
    "Max-IP": "constant-weight max inner product, gap 1 (docs/theory.md §6.2)",
    "Gap-Hamming": "bichromatic Hamming near neighbour, t = 2m+1, eps = 3/(2m+1) (docs/theory.md §6.2)",
    "AAttC": "approximate attention computation ||T - Att||_inf <= eps_a (AS23)",
    "AAttLGC": "approximate attention-loss gradient ||g - dL/dX||_inf <= eps (AS24)",
    "ALoRAGC": "approximate LoRA adapter gradient (Hu et al. Problem 1; a harness Instance)",
}


def default_arrows() -> list[Arrow]:
    return [
        SatToOV(),
        OVToMaxIP(),
        OVToGapHamming(),
        OVToAttentionP1(),
        GapHammingToAttentionAS23(),
        OVToAttentionG1Layout(),
        OVToGradientG1(),
        OVToGradientG1(zero_E=True),
        AttentionToGradient("gauss-legendre"),
        AttentionToGradient("left-riemann", calls=256),
        GradientToLoRA("cross", "C1"),
        GradientToLoRA("cross", "C1-q"),
        GradientToLoRA("cross", "C2"),
        GradientToLoRA("self", "C1"),
        GradientToLoRA("self", "C2"),
    ]


def build_graph(arrows: list[Arrow] | None = None) -> nx.MultiDiGraph:
    G = nx.MultiDiGraph()
    for name, what in PROBLEMS.items():
        G.add_node(name, description=what)
    for a in arrows or default_arrows():
        G.add_edge(
            a.source,
            a.target,
            key=a.name,
            arrow=a,
            spec=a.spec,
            accuracy=a.accuracy_statement(),
            extra_calls=a.extra_calls,
        )
    return G


def _compatible(arrows: list[Arrow]) -> bool:
    try:
        Composite(arrows)
        return True
    except HarnessError:
        return False


def paths(G: nx.MultiDiGraph, source: str, target: str) -> list[list[Arrow]]:
    """Every composable simple path of arrows from `source` to `target`."""
    if source not in G or target not in G:
        raise HarnessError(
            f"unknown problem {source if source not in G else target!r}; problems: {', '.join(G.nodes)}"
        )
    if source == target:
        return []
    out = []
    for edge_path in nx.all_simple_edge_paths(G, source, target):
        arrows = [G.edges[u, v, k]["arrow"] for u, v, k in edge_path]
        if _compatible(arrows):
            out.append(arrows)
    return out


def compose(arrows_or_names, G: nx.MultiDiGraph | None = None) -> Composite:
    """A Composite from arrows, or from arrow names looked up in G (default graph)."""
    items = list(arrows_or_names)
    if items and isinstance(items[0], str):
        G = G or build_graph()
        by_name = {k: d["arrow"] for _, _, k, d in G.edges(keys=True, data=True)}
        missing = [n for n in items if n not in by_name]
        if missing:
            raise HarnessError(f"unknown arrow {missing[0]!r}; arrows: {', '.join(by_name)}")
        items = [by_name[n] for n in items]
    return Composite(items)


def describe(G: nx.MultiDiGraph) -> str:
    lines = ["problems:"]
    for n, d in G.nodes(data=True):
        lines.append(f"  {n:<12} {d['description']}")
    lines.append("arrows:")
    for u, v, k, d in G.edges(keys=True, data=True):
        lines.append(f"  {u} -> {v}  [{k}]  ({d['spec']})")
        lines.append(f"      accuracy: {d['accuracy']}; extra oracle calls: {d['extra_calls']}")
    lines.append("composable paths k-SAT -> ALoRAGC:")
    for p in paths(G, "k-SAT", "ALoRAGC"):
        flag = (
            "   (as printed: fails, see benchmarks/results/reductions.md)" if any(a.fails for a in p) else ""
        )
        lines.append("  " + " ; ".join(a.name for a in p) + flag)
    return "\n".join(lines)


def draw_png(G: nx.MultiDiGraph, path: str) -> None:
    """Render the graph to a PNG with matplotlib's Agg backend (parallel arrows share one edge,
    labelled with every arrow name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos = {
        "k-SAT": (0, 0),
        "OV": (1, 0),
        "Max-IP": (2, 1.2),
        "Gap-Hamming": (2, -1.2),
        "AAttC": (3, 0.6),
        "AAttLGC": (3, -0.6),
        "ALoRAGC": (4.2, -0.6),
    }
    for n in G.nodes:
        pos.setdefault(n, (len(pos), 0))
    labels: dict = {}
    for u, v, k in G.edges(keys=True):
        labels.setdefault((u, v), []).append(k)
    simple = nx.DiGraph()
    simple.add_nodes_from(G.nodes)
    simple.add_edges_from(labels)
    fig, ax = plt.subplots(figsize=(12, 6))
    nx.draw_networkx(
        simple,
        pos,
        ax=ax,
        node_color="#dde8f5",
        node_size=2600,
        font_size=9,
        arrowsize=18,
        edgecolors="#335577",
    )
    nx.draw_networkx_edge_labels(
        simple, pos, ax=ax, font_size=7, edge_labels={e: "\n".join(ks) for e, ks in labels.items()}
    )
    ax.set_title("SETH chain: problems and reductions (lora-limits)")
    ax.axis("off")
    fig.tight_layout()
    import io

    from harness.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
