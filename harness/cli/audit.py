"""`lora-harness audit`: audit a pretrained transformer's attention heads against the theory's regimes
and run the solvers on its real heads (harness.audit; docs/audit.md)."""

from __future__ import annotations

from harness.cli.args import nonempty_path, nonneg_int, positive_float, positive_int
from harness.errors import HarnessError
from harness.fsio import check_folder, write_target


def parse_layers(text: str | None) -> list[int] | None:
    """'0,2,4-5' -> [0, 2, 4, 5]; None or 'all' -> None (every attention layer)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        a, sep, b = part.partition("-")
        try:
            lo, hi = int(a), int(b) if sep else int(a)
        except ValueError:
            raise HarnessError(f"--layers expects e.g. 0,2,4-5, got {text!r}") from None
        if lo < 0 or hi < lo:
            raise HarnessError(f"--layers range {part!r} is invalid")
        out.update(range(lo, hi + 1))
    if not out:
        raise HarnessError(f"--layers {text!r} names no layer; give e.g. 0,2,4-5 or all")
    return sorted(out)


def parse_lengths(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        vals = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise HarnessError(f"--lengths expects integers like 16,32,64, got {text!r}") from None
    if any(v < 2 for v in vals):
        raise HarnessError("--lengths must be >= 2")
    return vals


def _cmd_audit(args) -> int:
    from harness.audit.analysis import run_audit
    from harness.audit.loading import read_text
    from harness.audit.report import format_table, plot, write_json

    if args.max_tokens is not None and args.max_tokens < 2:
        raise HarnessError("--max-tokens must be >= 2")
    layers, lengths = parse_layers(args.layers), parse_lengths(args.lengths)
    for path in (args.json, args.plot):  # output paths are checked before the model is loaded
        if path is not None:
            write_target(path)
    if args.save_instances is not None:
        check_folder(args.save_instances, "instance folder")
    text = read_text(args.text)
    report = run_audit(
        args.model,
        text,
        layers=layers,
        max_tokens=args.max_tokens,
        scale=args.scale,
        scale_on=args.scale_on,
        eps=args.eps,
        max_rank=args.max_rank,
        construction=args.construction,
        r=args.r,
        seed=args.seed,
        rf_m=args.rf_m,
        gradients=not args.no_gradients,
        lengths=lengths,
        save_dir=args.save_instances,
    )
    report["text"] = str(args.text) if args.text else "builtin:sample_text.txt"
    print(format_table(report))
    if args.json is not None:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.plot is not None:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    if args.save_instances is not None:
        print(f"wrote {len(report['heads'])} instances to {args.save_instances}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "audit",
        help="audit a pretrained model's attention heads against the theory's regimes",
        description="Load a local Hugging Face model folder offline, run a text through it, capture every "
        "attention head, and report R, the paper's Gamma, the regime, the degree/rank poly needs, "
        "and the measured gradient errors of poly and random-features (docs/audit.md).",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="local Hugging Face model folder")
    p.add_argument(
        "--text",
        metavar="FILE",
        default=None,
        help="plain-text file (default: the built-in sample, about 230 tokens)",
    )
    p.add_argument("--layers", default=None, help="attention layers to audit, e.g. 0,2,4-5 (default all)")
    p.add_argument(
        "--max-tokens", type=positive_int, default=256, help="truncate the text to this many tokens"
    )
    p.add_argument(
        "--scale",
        type=positive_float,
        default=1.0,
        help="multiply every attention score by this factor (scales W_q and b_q): the "
        "norm-controlled variant",
    )
    p.add_argument(
        "--scale-on",
        choices=["q", "qk"],
        default="q",
        help="scale the query map by the factor (q) or query and key maps by its square "
        "root each (qk, which also shrinks ||K||_inf)",
    )
    p.add_argument("--eps", type=positive_float, default=1e-6, help="max-norm gradient error target for poly")
    p.add_argument(
        "--max-rank", type=positive_int, default=20000, help="poly refuses above this feature rank"
    )
    p.add_argument("--rf-m", type=positive_int, default=256, help="random-features: number of features m")
    p.add_argument("--r", type=positive_int, default=2, help="LoRA rank of the adapters on q and v (<= d)")
    p.add_argument(
        "--seed", type=nonneg_int, default=0, help="seed of adapters, target perturbation, features"
    )
    p.add_argument(
        "--construction",
        choices=["projected", "padded"],
        default="projected",
        help="head -> instance construction: projected (d = d_head) or padded (d = D + 1)",
    )
    p.add_argument(
        "--lengths",
        default=None,
        help="also report R on prefixes of these lengths (e.g. 16,32,64,128) for the plot",
    )
    p.add_argument("--no-gradients", action="store_true", help="norms only (skip the solver runs)")
    p.add_argument(
        "--json", metavar="FILE", type=nonempty_path, default=None, help="write the JSON report here"
    )
    p.add_argument("--plot", metavar="PNG", type=nonempty_path, default=None, help="write the plot here")
    p.add_argument(
        "--save-instances",
        metavar="DIR",
        type=nonempty_path,
        default=None,
        help="write every head as an interchange-format instance (layerLL_headHH.npz)",
    )
    p.set_defaults(func=_cmd_audit)
