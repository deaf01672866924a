"""`lora-harness reductions [--png PATH]`: the graph of problems and reductions (reductions.graph)."""

from __future__ import annotations

from harness.cli.args import nonempty_path


def _cmd_reductions(args) -> int:
    from reductions.graph import build_graph, describe, draw_png

    G = build_graph()
    print(describe(G))
    if args.png is not None:
        from harness.fsio import write_target

        write_target(args.png)
        draw_png(G, args.png)
        print(f"wrote {args.png}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("reductions", help="show the graph of problems and reductions")
    p.add_argument("--png", type=nonempty_path, help="also write the graph as a PNG")
    p.set_defaults(func=_cmd_reductions)
