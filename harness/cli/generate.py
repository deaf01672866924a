"""`lora-harness generate KIND`: an instance of a family (bounded, threshold, outliers), or a
`sat-chain` hardness bundle (reductions.bundle)."""

from __future__ import annotations

from harness.cli.args import (
    add_max_memory,
    finite_float,
    memory_limit,
    nonempty_path,
    nonneg_int,
    positive_float,
    positive_int,
)
from harness.errors import HarnessError
from harness.families import FAMILIES, family_memory, parse_adapt
from harness.fsio import check_replaceable, write_target
from harness.io import save_instance
from reductions.sat_sources import KINDS


def _cmd_generate_family(args) -> int:
    fam = FAMILIES[args.family]
    write_target(args.out)
    memory_limit(args).check(
        family_memory(args.L, args.d, args.N), f"generate {args.family} (N={args.N}, L={args.L}, d={args.d})"
    )
    adapt = parse_adapt(args.adapt)
    if not adapt and args.r is not None:
        raise HarnessError(
            f"--r {args.r} given but --adapt {args.adapt!r} adapts nothing; drop --r or adapt q, k or v"
        )
    kw = dict(
        L=args.L,
        d=args.d,
        r=1 if args.r is None else args.r,
        adapt=adapt,
        seed=args.seed,
        N=args.N,
        beta=args.beta,
        alpha=args.alpha,
        cross=args.cross,
        dtype=args.dtype,
        causal=args.causal,
    )
    if args.family == "threshold":
        kw["c"] = args.c
    else:
        kw["gamma"] = args.gamma
    inst = fam(**kw)
    sha = save_instance(inst, args.out)
    print(f"wrote {args.out}: {inst.describe()} seed={args.seed} sha256={sha[:16]}")
    return 0


def _cmd_generate_sat_chain(args) -> int:
    from reductions.bundle import is_bundle, write_bundle
    from reductions.sat_sources import from_kind

    check_replaceable(args.out, is_bundle, "bundle")  # before the formula is built and solved
    limit = memory_limit(args)
    cnf = from_kind(args.kind, args.k, args.vars, args.seed, max_memory=limit)
    meta = write_bundle(cnf, args.out, args.dtype, max_memory=limit)
    print(
        f"wrote {args.out}: {len(meta['files'])} files; v={cnf.nvars} m={cnf.m} N={meta['N']} "
        f"answer={meta['answer']}"
    )
    return 0


def register(sub) -> None:
    gen = sub.add_parser("generate", help="generate an instance (families, sat-chain bundles, ...)")
    gsub = gen.add_subparsers(dest="family", metavar="KIND")
    gsub.required = True
    for name, fn in FAMILIES.items():
        p = gsub.add_parser(name, help=(fn.__doc__ or "").strip().splitlines()[0])
        p.add_argument("--L", type=positive_int, required=True, help="sequence length")
        p.add_argument("--d", type=positive_int, required=True, help="head dimension")
        p.add_argument("--r", type=positive_int, default=None, help="LoRA rank (<= d; default 1)")
        if name == "threshold":
            p.add_argument("--c", type=positive_float, default=1.0, help="gamma = c sqrt(log L)")
        else:
            p.add_argument(
                "--gamma", type=positive_float, default=1.0, help="max(||X_q W_q||_inf, ||X_k W_k||_inf)"
            )
        p.add_argument("--adapt", default="q,v", help="adapted weights, e.g. q,v or q,k,v, or none")
        p.add_argument("--N", type=positive_int, default=1, help="data points")
        p.add_argument("--beta", type=finite_float, default=None, help="inverse temperature (default 1/d)")
        p.add_argument("--alpha", type=finite_float, default=None, help="LoRA alpha (default r)")
        p.add_argument("--cross", action="store_true", help="independent X_q, X_k, X_v")
        p.add_argument(
            "--causal",
            action="store_true",
            help="causal mask: query j attends keys m <= j (top-left, as torch SDPA's is_causal)",
        )
        p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
        p.add_argument("--seed", type=nonneg_int, default=0)
        p.add_argument("--out", type=nonempty_path, required=True)
        add_max_memory(p)
        p.set_defaults(func=_cmd_generate_family)
    _register_sat_chain(gsub)


def _register_sat_chain(gsub) -> None:
    p = gsub.add_parser("sat-chain", help="hardness bundle: k-CNF and every instance of the SETH chain")
    p.add_argument("--k", type=positive_int, default=3, help="clause width")
    p.add_argument(
        "--vars",
        type=positive_int,
        required=True,
        help="number of variables v (N = 2^ceil(v/2)); for tseitin, pigeonhole, coloring the family's size",
    )
    p.add_argument(
        "--kind",
        default="planted",
        choices=list(KINDS),
        help="planted / unsat random k-CNF, or a CNFgen family (--vars = its size parameter)",
    )
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument(
        "--out",
        type=nonempty_path,
        required=True,
        help="output folder: new, empty, or an earlier bundle (replaced whole)",
    )
    add_max_memory(p)
    p.set_defaults(func=_cmd_generate_sat_chain)
