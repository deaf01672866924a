"""The bad-input corpus: every class of bad input the CLI must refuse with one line on stderr, exit
code 2, and no file changed. Generated, not stored: each case's `setup` builds its files in the case's
folder from a valid, seeded instance (harness.families) or formula (reductions.sat_sources).

`cases()` yields `Case(id, cls, argv, setup, needs)`; "{d}" in argv is the case's folder. `needs`:
"root" (os.mknod of a character device), "unprivileged" (read-only folders and files: the case runs
in a child without root when the tests run as root), "fifo". tests/cli/test_corpus.py runs them.
Classes (README "Bad input"): write-target, out-folder, usage, range, solver-option, solver-spec,
device, instance-file, formula, text, memory.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = ["Case", "cases", "valid_arrays", "npz", "npy_member"]


@dataclass(frozen=True)
class Case:
    id: str
    cls: str
    argv: tuple
    setup: Callable[[Path], None] | None = None
    needs: frozenset = field(default_factory=frozenset)
    match: str | None = None  # a regex the error line must contain (it names the problem)


def _slug(argv) -> str:
    return "_".join(a[2:] if a.startswith("--") else (a or "empty") for a in argv)


# ------------------------------------------------------------------------------------ builders
def valid_arrays(L: int = 8, d: int = 4, r: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """A valid instance's arrays (alpha, beta included), from the seeded family."""
    from harness import families

    inst = families.bounded(L=L, d=d, r=r, seed=seed)
    out = {k: np.array(v) for k, v in inst.arrays.items()}
    out.update(alpha=np.array(inst.alpha), beta=np.array(inst.beta))
    return out


def npy_member(arr: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.lib.format.write_array(b, arr, allow_pickle=True)
    return b.getvalue()


def npz(path: Path, arrays: dict, meta=None, members: dict | None = None, deflate: bool = False) -> None:
    """An .npz of `arrays` (plus an optional __meta__ JSON and raw extra members)."""
    m = {k + ".npy": npy_member(np.asarray(v)) for k, v in arrays.items()}
    if meta is not None:
        m["__meta__.npy"] = npy_member(np.array(json.dumps(meta)))
    m.update(members or {})
    comp = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=comp) as zf:
        for name, data in m.items():
            zf.writestr(name, data)


def npy_header(shape, descr: str = "<f8", data: bytes = b"") -> bytes:
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return b.getvalue() + data


def zip_bomb(path: Path, bombs: dict, extra: dict) -> None:
    """`extra` arrays plus deflated all-zero float64 members {name: shape} (a few KiB on disk each)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, v in extra.items():
            zf.writestr(k + ".npy", npy_member(np.asarray(v)))
        for name, shape in bombs.items():
            info = zipfile.ZipInfo(name + ".npy")
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                fh.write(npy_header(shape))
                chunk, left = bytes(1 << 22), int(np.prod(shape)) * 8
                while left > 0:
                    fh.write(chunk[: min(left, len(chunk))])
                    left -= len(chunk)


def _bomb_instance(n: int) -> Callable[[Path], None]:
    """A consistent instance of length n whose X_q and Y are deflated zeros (tiny file, big arrays)."""

    def setup(w: Path) -> None:
        a = valid_arrays()
        extra = {k: v for k, v in a.items() if k not in ("X_q", "X_k", "X_v", "Y")}
        zip_bomb(w / "bomb.npz", {"X_q": (1, n, 4), "Y": (1, n, 4)}, extra)

    return setup


def _instance(name: str = "inst.npz", **kw) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        from harness import families
        from harness.io import save_instance

        save_instance(families.bounded(**{"L": 8, "d": 4, "r": 2, "seed": 0, **kw}), w / name)

    return setup


def _formula(v: int = 6, name: str = "f.cnf") -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        from reductions import sat_sources

        sat_sources.write_dimacs(sat_sources.planted(3, v, 1), w / name)

    return setup


def _text(name: str, data) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        (w / name).write_bytes(data if isinstance(data, bytes) else data.encode())

    return setup


def _mutated(mutate, name: str = "bad.npz", with_meta: bool = False) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        a = valid_arrays()
        out = mutate(dict(a))
        arrays, meta = out if isinstance(out, tuple) else (out, None)
        npz(w / name, arrays, meta=meta)

    return setup


def _chardev(name: str, minor: int) -> Callable[[Path], None]:
    return lambda w: os.mknod(w / name, 0o666 | stat.S_IFCHR, os.makedev(1, minor))


def _both(*fs) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        for f in fs:
            if f is not None:
                f(w)

    return setup


def _mkdir(name: str, mode: int | None = None, files: dict | None = None) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        (w / name).mkdir()
        for k, v in (files or {}).items():
            (w / name / k).write_text(v)
        if mode is not None:
            os.chmod(w / name, mode)

    return setup


def _readonly_file(name: str) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        (w / name).write_text("keep")
        os.chmod(w / name, 0o444)

    return setup


def _model_dir(w: Path) -> None:
    """A folder that passes the audit's first check (config.json), never loaded: every audit case
    here fails on its arguments before the model is read (no 'models' extra needed)."""
    (w / "m").mkdir()
    (w / "m" / "config.json").write_text('{"model_type": "bert"}')


# ------------------------------------------------------------------------------------ cases
def _write_targets() -> Iterator[Case]:
    gen = ("generate", "bounded", "--L", "8", "--d", "4", "--out")
    writers = {
        "solve": (("solve", "inst.npz", "--out"), _instance()),
        "generate": (gen, None),
        "reductions-png": (("reductions", "--png"), None),
        "audit-json": (("audit", "--model", "m", "--json"), _model_dir),
        "audit-plot": (("audit", "--model", "m", "--plot"), _model_dir),
    }
    for w, (argv, setup) in writers.items():
        yield from _written_through(w, argv, setup)
        yield Case(
            f"{w}-directory",
            "write-target",
            argv + ("adir",),
            _both(setup, _mkdir("adir")),
            match="adir: it is a folder",
        )
        yield Case(f"{w}-empty", "write-target", argv + ("",), setup, match="empty path")
        yield Case(
            f"{w}-trailing-slash", "write-target", argv + ("new.out/",), setup, match="new.out/: a file name"
        )
        yield Case(
            f"{w}-missing-folder",
            "write-target",
            argv + ("no/such/x.out",),
            setup,
            match="folder no/such does not exist",
        )
        yield Case(
            f"{w}-parent-is-file",
            "write-target",
            argv + ("f.txt/x.out",),
            _both(setup, _text("f.txt", "keep")),
            match="f.txt",
        )
        yield Case(
            f"{w}-readonly-folder",
            "write-target",
            argv + ("ro/x.out",),
            _both(setup, _mkdir("ro", 0o555)),
            frozenset({"unprivileged"}),
            "ro is not writable",
        )
        yield Case(
            f"{w}-readonly-file",
            "write-target",
            argv + ("ro.out",),
            _both(setup, _readonly_file("ro.out")),
            frozenset({"unprivileged"}),
            "ro.out: the existing file is read-only",
        )
    yield from _out_folders()


def _written_through(w, argv, setup) -> Iterator[Case]:
    """A full device and a FIFO without a reader fail when written (at the end of the work), so
    only where the work is quick: not the audit, whose fake model would fail first."""
    if w.startswith("audit"):
        return
    full = _both(setup, _chardev("full", 7))
    yield Case(
        f"{w}-full-device", "write-target", argv + ("{d}/full",), full, frozenset({"root"}), "full: no space"
    )
    fifo = _both(setup, lambda d: os.mkfifo(d / "fifo"))
    yield Case(
        f"{w}-fifo-no-reader", "write-target", argv + ("{d}/fifo",), fifo, frozenset({"fifo"}), "no reader"
    )


def _out_folders() -> Iterator[Case]:
    dirs = {
        "sat-chain": (("generate", "sat-chain", "--k", "3", "--vars", "6", "--out"), None),
        "audit-save-instances": (("audit", "--model", "m", "--save-instances"), _model_dir),
        "check-out-dir": (("check", "--solver", "streaming", "--out-dir"), None),
    }
    for w, (argv, setup) in dirs.items():
        yield Case(
            f"{w}-is-file",
            "out-folder",
            argv + ("f.txt",),
            _both(setup, _text("f.txt", "keep")),
            match="f.txt: it exists and is a regular file, not a folder",
        )
        yield Case(f"{w}-empty", "out-folder", argv + ("",), setup, match="empty path")
        yield Case(
            f"{w}-parent-is-file",
            "out-folder",
            argv + ("f.txt/sub",),
            _both(setup, _text("f.txt", "keep")),
            match="f.txt",
        )
        yield Case(
            f"{w}-device",
            "out-folder",
            argv + ("{d}/null",),
            _both(setup, _chardev("null", 3)),
            frozenset({"root"}),
            "null: it exists and is a character device",
        )
        yield Case(
            f"{w}-readonly",
            "out-folder",
            argv + ("ro/sub",),
            _both(setup, _mkdir("ro", 0o555)),
            frozenset({"unprivileged"}),
            "ro is not writable",
        )
    yield Case(
        "sat-chain-foreign-folder",
        "out-folder",
        ("generate", "sat-chain", "--k", "3", "--vars", "6", "--out", "mine"),
        _mkdir("mine", files={"thesis.tex": "keep"}),
        match="mine: the folder holds other files",
    )


def _usage() -> Iterator[Case]:
    S = ("solve", "inst.npz")
    for argv in [
        (),
        ("bogus",),
        ("--nope",),
        ("solve",),
        ("solve", "a", "b"),
        ("solvers", "extra"),
        S + ("--bogus",),
        S + ("--threads",),
        S + ("--dtype", "float16"),
        ("generate",),
        ("generate", "nope"),
        ("generate", "bounded", "--L", "8"),
        ("solve-sat",),
        ("solve-sat", "f.cnf", "--via", "ov"),
        ("solve-sat", "f.cnf", "--tau", "2"),
        ("check", "inst.npz", "--tol"),
        ("check", "--solver", "x", "--budget", "huge"),
        ("run", "--full", "--tiny"),
        ("run", "--clock", "x"),
        ("audit",),
        ("audit", "--model", "m", "--construction", "x"),
        ("reductions", "extra"),
        ("generate", "sat-chain", "--vars", "4", "--kind", "nope", "--out", "b"),
    ]:
        yield Case(
            "usage-" + (_slug(argv) or "no-command"),
            "usage",
            argv,
            _both(_instance(), _formula(), _model_dir),
            match=r"\(see lora-harness .*--help\)$",
        )


def _ranges() -> Iterator[Case]:
    G = ("generate", "bounded", "--L", "8", "--d", "4")
    gen_bad = {
        "--L": ["0", "-1", "abc", "2.5"],
        "--d": ["0"],
        "--r": ["0", "5"],
        "--N": ["0"],
        "--gamma": ["0", "-1", "nan", "inf"],
        "--beta": ["nan", "inf"],
        "--alpha": ["inf", "nan"],
        "--seed": ["-1", "1.5"],
        "--adapt": ["x", "", "q;v"],
    }
    for flag, vals in gen_bad.items():
        for v in vals:
            yield Case(
                f"generate{flag}={v or 'empty'}", "range", G + (flag, v, "--out", "x.npz"), match=flag[2:]
            )
    yield Case("generate-adapt-none-with-r", "range", G + ("--adapt", "none", "--r", "3", "--out", "x.npz"))
    yield Case(
        "threshold-c-nan",
        "range",
        ("generate", "threshold", "--L", "8", "--d", "4", "--c", "nan", "--out", "x.npz"),
    )
    SC = ("generate", "sat-chain")
    for argv in [
        ("--k", "0", "--vars", "5"),
        ("--k", "4", "--vars", "3"),
        ("--vars", "0"),
        ("--vars", "3", "--seed", "-1"),
        ("--kind", "tseitin", "--vars", "3"),
        ("--kind", "tseitin", "--vars", "2"),
        ("--kind", "tseitin", "--vars", "-2"),
        ("--kind", "pigeonhole", "--vars", "0"),
        ("--kind", "pigeonhole", "--vars", "1"),
        ("--kind", "coloring", "--vars", "0"),
    ]:
        yield Case(
            "sat-chain-" + _slug(argv),
            "range",
            SC + argv + ("--out", "b"),
            match="k=|--k|vars|seed|tseitin|pigeon|coloring",
        )
    C = ("check", "inst.npz", "--solver", "streaming")
    for v in ("nan", "-1", "inf", "abc"):
        yield Case(f"check-tol={v}", "range", C + ("--tol", v), _instance(), match="--tol")
    for flag, v in (("--claim-eps", "nan"), ("--claim-eps", "-1"), ("--claim-exponent", "nan")):
        yield Case(f"check{flag}={v}", "range", ("check", "--solver", "streaming", flag, v), match=flag)
    A = ("audit", "--model", "m")
    for flag, v in (
        ("--max-tokens", "1"),
        ("--scale", "nan"),
        ("--scale", "0"),
        ("--eps", "nan"),
        ("--eps", "inf"),
        ("--max-rank", "0"),
        ("--rf-m", "0"),
        ("--r", "0"),
        ("--seed", "-1"),
        ("--layers", "a"),
        ("--layers", ","),
        ("--layers", "5-2"),
        ("--lengths", "1"),
        ("--lengths", "a"),
    ):
        yield Case(f"audit{flag}={v}", "range", A + (flag, v), _model_dir, match=flag)
    R = ("run", "--tiny", "--out", "s")
    for flag, v in (("--repeats", "0"), ("--threads", "0"), ("--seed", "-1"), ("--groups", "x")):
        yield Case(
            f"run{flag}={v}", "range", R + (flag, v), match="study group" if flag == "--groups" else flag[2:]
        )


def _options() -> Iterator[Case]:
    bad = {
        "streaming": [
            "block_k=-3",
            "block_q=0",
            "block_q=abc",
            "block_q=1.5",
            "block_q=true",
            "block_q=",
            "block_k=[1]",
        ],
        "random-features": ["m=abc", "m=null", "m=0", "m=1.5", "m=true", "seed=-1", "orthogonal=2"],
        "poly": ["eps=0", "eps=nan", "eps=true", "degree=-1", "degree=1.5", "max_rank=0", "max_rank=abc"],
        "closed-form": ["block_q=8"],
    }
    for solver, opts in bad.items():
        for o in opts:
            yield Case(
                f"opt-{solver}-{o}",
                "solver-option",
                ("solve", "inst.npz", "--solver", solver, "--opt", o, "--out", "g.npz"),
                _instance(),
                match=f"solver '{solver}'.* option '?{o.partition('=')[0]}",
            )
    for o in ("=3", "k"):
        yield Case(f"opt-syntax-{o}", "solver-option", ("solve", "inst.npz", "--opt", o), _instance())
    for flag, v in (("--eps", "inf"), ("--eps", "0"), ("--degree", "-1"), ("--max-rank", "0")):
        yield Case(
            f"poly{flag}={v}",
            "solver-option",
            ("solve", "inst.npz", "--solver", "poly", flag, v),
            _instance(),
            match=flag,
        )
    yield Case(
        "eps-on-streaming",
        "solver-option",
        ("solve", "inst.npz", "--solver", "streaming", "--eps", "1e-6"),
        _instance(),
    )
    for t in ("0", "-1", "abc", "100000"):
        yield Case(
            f"threads={t}",
            "solver-option",
            ("solve", "inst.npz", "--threads", t),
            _instance(),
            match="--threads",
        )
        yield Case(
            f"solve-sat-threads={t}",
            "solver-option",
            ("solve-sat", "f.cnf", "--threads", t),
            _formula(),
            match="--threads",
        )
    yield Case(
        "check-bad-opt",
        "solver-option",
        ("check", "inst.npz", "--solver", "streaming", "--opt", "block_q=-2"),
        _instance(),
    )


def _solvers_and_devices() -> Iterator[Case]:
    for spec in (
        "",
        "nope",
        "harness.solvers.base:Solver",
        ":",
        "a:",
        "no.such.module:f",
        "harness.io:META_KEY",
    ):
        yield Case(
            f"solver-spec={spec or 'empty'}",
            "solver-spec",
            ("solve", "inst.npz", "--solver", spec),
            _instance(),
        )
    yield Case(
        "solve-sat-abstract-solver",
        "solver-spec",
        ("solve-sat", "f.cnf", "--solver", "harness.solvers.base:Solver"),
        _formula(),
    )
    for dev in ("meta", "mps", "xla", "", "cpu:1"):
        yield Case(
            f"device={dev or 'empty'}",
            "device",
            ("solve", "inst.npz", "--device", dev),
            _instance(),
            match="device",
        )
    yield Case("solve-sat-device-meta", "device", ("solve-sat", "f.cnf", "--device", "meta"), _formula())


def _instance_files() -> Iterator[Case]:
    def on(a, **kv):
        a.update(kv)
        return a

    mut = {
        "nan": lambda a: on(
            a, X_q=np.where(np.arange(a["X_q"].size).reshape(a["X_q"].shape) == 1, np.nan, a["X_q"])
        ),
        "inf": lambda a: on(a, W_k=np.full_like(a["W_k"], np.inf)),
        "bool": lambda a: on(a, W_q=np.eye(4, dtype=bool)),
        "complex": lambda a: on(a, Y=a["Y"].astype(np.complex128)),
        "float16": lambda a: on(a, W_q=a["W_q"].astype(np.float16)),
        "longdouble": lambda a: on(a, W_q=a["W_q"].astype(np.longdouble)),
        "strings": lambda a: on(a, W_q=np.array([["a"] * 4] * 4)),
        "X-0d": lambda a: on(a, X_q=np.array(1.0), X_k=np.array(1.0), X_v=np.array(1.0)),
        "L0": lambda a: on(a, **{k: a[k][:, :0] for k in ("X_q", "X_k", "X_v", "Y")}),
        "W-nonsquare": lambda a: on(a, W_q=a["W_q"][:, :3]),
        "r-gt-d": lambda a: on(
            a, A_q=np.ones((5, 4)), B_q=np.ones((4, 5)), A_v=np.ones((5, 4)), B_v=np.ones((4, 5))
        ),
        "half-adapter": lambda a: {k: v for k, v in a.items() if k != "B_q"},
        "Y-shape": lambda a: on(a, Y=a["Y"][:, :-1]),
        "N-mismatch": lambda a: on(a, X_k=np.concatenate([a["X_k"]] * 2), X_v=np.concatenate([a["X_v"]] * 2)),
        "missing-W": lambda a: {k: v for k, v in a.items() if k != "W_v"},
        "unknown-name": lambda a: on(a, Z=np.ones(3)),
        "alpha-vector": lambda a: on(a, alpha=np.ones(2)),
        "beta-nan": lambda a: on(a, beta=np.array(np.nan)),
        "beta-bool": lambda a: on(a, beta=np.array(True)),
        "sha-null-tampered": lambda a: (on(a, W_q=a["W_q"] + 1), {"sha256": None}),
        "sha-int": lambda a: (a, {"sha256": 5}),
        "sha-wrong": lambda a: (a, {"sha256": "0" * 64}),
        "format-version-2": lambda a: (a, {"format_version": 2}),
        "format-version-bool": lambda a: (a, {"format_version": True}),
        "format-version-str": lambda a: (a, {"format_version": "1"}),
        # the causal mask flag (issue 16): a 0-d bool, nothing else
        "causal-float": lambda a: on(a, causal=np.array(0.5)),
        "causal-vector": lambda a: on(a, causal=np.array([True, False])),
        "causal-int-2": lambda a: on(a, causal=np.array(2)),
        "causal-string": lambda a: on(a, causal=np.array("yes")),
        "causal-meta-disagrees": lambda a: (on(a, causal=np.array(True)), {"causal": False}),
    }
    for name, m in mut.items():
        yield Case(f"npz-{name}", "instance-file", ("solve", "bad.npz"), _mutated(m), match="bad.npz")

    def members(**raw):
        def setup(w: Path) -> None:
            a = {k + ".npy": npy_member(v) for k, v in valid_arrays().items()}
            a.update(raw)
            with zipfile.ZipFile(w / "bad.npz", "w") as zf:
                for k, v in a.items():
                    zf.writestr(k, v)

        return setup

    def dup(w: Path) -> None:
        import warnings

        members()(w)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with zipfile.ZipFile(w / "bad.npz", "a") as zf:
                zf.writestr("W_q.npy", npy_member(np.full((4, 4), 7.0)))

    raw = {
        "empty-file": _text("bad.npz", b""),
        "random-bytes": _text("bad.npz", bytes(range(256)) * 8),
        "npy-not-npz": _text("bad.npz", npy_member(np.ones(3))),
        "truncated": lambda w: (
            _instance("ok.npz")(w),
            (w / "bad.npz").write_bytes((w / "ok.npz").read_bytes()[:400]),
        ),
        "pickled-object": members(**{"W_q.npy": npy_member(np.array([{"a": 1}], dtype=object))}),
        "header-claims-more": members(**{"Y.npy": npy_header((1, 8, 4), data=b"\0" * 8)}),
        "header-huge-shape": members(**{"W_q.npy": npy_header((1 << 20, 1 << 20))}),
        "header-garbage": members(**{"W_q.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': 1,  }\n"}),
        "member-outside": members(**{"../x.npy": npy_member(np.ones(2))}),
        "duplicate-member": dup,
        "meta-not-json": members(**{"__meta__.npy": npy_member(np.array("{not json"))}),
        "meta-list": members(**{"__meta__.npy": npy_member(np.array("[1]"))}),
        "zip-bomb-unknown-name": lambda w: zip_bomb(w / "bad.npz", {"junk": (8 << 20,)}, valid_arrays()),
    }
    for name, setup in raw.items():
        yield Case(f"raw-{name}", "instance-file", ("solve", "bad.npz"), setup, match="bad.npz")
    yield Case("instance-missing", "instance-file", ("solve", "nope.npz"))
    yield Case("instance-directory", "instance-file", ("solve", "adir"), _mkdir("adir"))
    yield Case("instance-empty-path", "instance-file", ("solve", ""))
    yield Case(
        "instance-fifo",
        "instance-file",
        ("solve", "{d}/fifo"),
        lambda w: os.mkfifo(w / "fifo"),
        frozenset({"fifo"}),
    )
    yield Case(
        "instance-device", "instance-file", ("solve", "{d}/null"), _chardev("null", 3), frozenset({"root"})
    )
    yield Case(
        "gradient-file-as-instance",
        "instance-file",
        ("solve", "g.npz"),
        lambda w: npz(w / "g.npz", {"dA_q": np.ones((2, 4)), "loss": np.array(1.0)}),
    )
    yield Case(
        "check-bool-instance",
        "instance-file",
        ("check", "bad.npz", "--solver", "streaming"),
        _mutated(mut["bool"]),
    )


def _formulas() -> Iterator[Case]:
    bodies = {
        "empty": "",
        "no-header": "1 2 0\n",
        "bad-header": "p dnf 3 1\n1 0\n",
        "header-nonint": "p cnf x 1\n1 0\n",
        "two-headers": "p cnf 2 1\np cnf 2 1\n1 0\n",
        "literal-range": "p cnf 2 1\n3 0\n",
        "literal-nonint": "p cnf 2 1\n1 a 0\n",
        "count-mismatch": "p cnf 2 3\n1 0\n",
        "binary": bytes(range(256)),
    }
    for name, body in bodies.items():
        yield Case(f"cnf-{name}", "formula", ("solve-sat", "f.cnf"), _text("f.cnf", body))
    yield Case("cnf-missing", "formula", ("solve-sat", "nope.cnf"))
    yield Case("cnf-directory", "formula", ("solve-sat", "adir"), _mkdir("adir"))
    yield Case(
        "cnf-fifo", "formula", ("solve-sat", "{d}/fifo"), lambda w: os.mkfifo(w / "fifo"), frozenset({"fifo"})
    )
    yield Case("cnf-instance-file", "formula", ("solve-sat", "inst.npz"), _instance())
    A = ("audit", "--model", "m", "--text")
    yield Case(
        "audit-text-not-utf8",
        "text",
        A + ("t.txt",),
        _both(_model_dir, _text("t.txt", b"caf\xe9 \xff")),
        match="t.txt.*UTF-8",
    )
    yield Case(
        "audit-text-directory",
        "text",
        A + ("adir",),
        _both(_model_dir, _mkdir("adir")),
        match="adir is a folder",
    )
    yield Case("audit-text-missing", "text", A + ("nope.txt",), _model_dir, match="nope.txt does not exist")
    yield Case(
        "audit-text-empty", "text", A + ("t.txt",), _both(_model_dir, _text("t.txt", " \n")), match="empty"
    )
    yield Case("audit-model-missing", "text", ("audit", "--model", "nope"))
    yield Case("audit-model-not-hf", "text", ("audit", "--model", "adir"), _mkdir("adir"))


def _memory() -> Iterator[Case]:
    """Refused before allocating, against an explicit --max-memory (machine independent)."""
    M = ("--max-memory", "64M")
    yield Case(
        "mem-closed-form-L2048",
        "memory",
        ("solve", "big.npz", "--solver", "closed-form") + M,
        _instance("big.npz", L=2048, d=2, r=1),
    )
    yield Case(
        "mem-autograd-L2048",
        "memory",
        ("solve", "big.npz", "--solver", "autograd") + M,
        _instance("big.npz", L=2048, d=2, r=1),
    )
    yield Case(
        "mem-streaming-huge-tile",
        "memory",
        ("solve", "big.npz", "--solver", "streaming", "--opt", "block_q=2048", "--opt", "block_k=2048") + M,
        _instance("big.npz", L=2048, d=2, r=1),
    )
    yield Case(
        "mem-rf-m-1e7",
        "memory",
        ("solve", "inst.npz", "--solver", "random-features", "--opt", "m=10000000") + M,
        _instance(),
    )
    yield Case(
        "mem-check-reference",
        "memory",
        ("check", "big.npz", "--solver", "streaming") + M,
        _instance("big.npz", L=2048, d=2, r=1),
    )
    yield Case(
        "mem-generate-L",
        "memory",
        ("generate", "bounded", "--L", "100000", "--d", "64", "--out", "x.npz") + M,
    )
    yield Case("mem-sat-chain-v40", "memory", ("generate", "sat-chain", "--vars", "40", "--out", "b") + M)
    yield Case("mem-sat-chain-v200", "memory", ("generate", "sat-chain", "--vars", "200", "--out", "b"))
    yield Case(
        "mem-sat-chain-k1000",
        "memory",
        ("generate", "sat-chain", "--k", "1000", "--vars", "1000", "--out", "b"),
    )
    yield Case(
        "mem-sat-chain-k7", "memory", ("generate", "sat-chain", "--k", "7", "--vars", "12", "--out", "b") + M
    )
    yield Case(
        "mem-pigeonhole-60",
        "memory",
        ("generate", "sat-chain", "--kind", "pigeonhole", "--vars", "60", "--out", "b"),
    )
    yield Case("mem-solve-sat-v200", "memory", ("solve-sat", "f.cnf"), _text("f.cnf", "p cnf 200 1\n1 0\n"))
    yield Case("mem-solve-sat-v30", "memory", ("solve-sat", "f.cnf") + M, _text("f.cnf", "p cnf 30 1\n1 0\n"))
    yield Case("mem-npz-headers", "memory", ("solve", "bomb.npz") + M, _bomb_instance(1 << 20))
    yield Case("mem-max-memory-syntax", "memory", ("solve", "inst.npz", "--max-memory", "lots"), _instance())


def cases() -> Iterator[Case]:
    for gen in (_write_targets, _usage, _ranges, _options, _solvers_and_devices, _instance_files, _formulas):
        yield from gen()
    for c in _memory():  # a refusal names the estimate, the limit and the option that raises it
        yield c if c.match or c.id.endswith("syntax") else replace(c, match=r"needs about .*--max-memory")
