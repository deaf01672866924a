"""`lora-harness solvers`: every solver that loads: name, exact/approximate, claimed cost, and each
option with its type, range and default."""

from __future__ import annotations

from harness.solvers import list_solvers
from harness.solvers.options import as_schema


def _cmd_solvers(args) -> int:
    rows = [(s.name, "exact" if s.exact else "approximate", s.cost, s.description) for s in list_solvers()]
    w = [max(len(r[i]) for r in rows + [("name", "kind", "claimed cost", "")]) for i in range(3)]
    print(f"{'name':<{w[0]}}  {'kind':<{w[1]}}  {'claimed cost':<{w[2]}}  description")
    for s, r in zip(list_solvers(), rows, strict=True):
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
        for k, o in as_schema(s.options).items():
            print(f"{'':<{w[0]}}    --opt {k}=...  {o.describe()}{'; ' + o.help if o.help else ''}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("solvers", help="list solvers: name, exact/approximate, claimed cost")
    p.set_defaults(func=_cmd_solvers)
