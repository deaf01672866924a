"""`lora-harness solvers`: every solver that loads: name, exact/approximate, claimed cost."""

from __future__ import annotations

from harness.solvers import list_solvers


def _cmd_solvers(args) -> int:
    rows = [(s.name, "exact" if s.exact else "approximate", s.cost, s.description) for s in list_solvers()]
    w = [max(len(r[i]) for r in rows + [("name", "kind", "claimed cost", "")]) for i in range(3)]
    print(f"{'name':<{w[0]}}  {'kind':<{w[1]}}  {'claimed cost':<{w[2]}}  description")
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("solvers", help="list solvers: name, exact/approximate, claimed cost")
    p.set_defaults(func=_cmd_solvers)
