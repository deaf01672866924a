"""The sizes of the study grid (`StudyConfig`: default, full, tiny) and the study's fixed names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

EXACT = ("closed-form", "streaming", "autograd")

REFERENCE = "closed-form"
#: the further approximate solvers of the scaling group
EXTRAS = ("poly-chained", "random-features")

FORMAT = "lora-harness-study/2"  # /2: every record carries a sha256 of its own content


@dataclass
class StudyConfig:
    """Sizes of the study grid. `default()` takes about 2 minutes on 2 CPU cores (in-process);
    `full()` is bigger."""

    device: str = "cpu"
    dtype: str = "float64"
    seed: int = 0
    repeats: int = 5
    warmup: int = 1
    budget_s: float = 3.5  # stop a cell's timing repeats once this many seconds are spent
    #                                  (3.5 s and the sizes below keep the default run <= 3 min on 2 cores)
    clock: str = "process"  # CPU: process CPU time (one torch thread); "wall" for wall time
    # scaling
    d: int = 4
    r: int = 2
    gamma: float = 1.0
    exact_L: dict = field(
        default_factory=lambda: {"closed-form": [8, 13], "autograd": [8, 13], "streaming": [8, 15]}
    )
    poly_L: list = field(default_factory=lambda: [8, 18])
    poly_degree: int = 5
    eps_poly_L: list = field(default_factory=lambda: [8, 16])
    chained_L: list = field(default_factory=lambda: [8, 16])  # poly-chained (fixed degree: O(L k^2 d))
    chained_degree: int = 3
    rf_L: list = field(default_factory=lambda: [8, 15])  # random-features, m features
    rf_m: int = 256
    causal_L: dict = field(default_factory=lambda: {"streaming": [8, 15], "poly": [8, 19]})
    #                                  causal series of the scaling group (poly at poly_degree)
    fit_min_series: dict = field(default_factory=lambda: {"streaming": 13, "streaming (causal)": 13})
    #                                  per-series override: streaming keeps all keys in one 4096-key
    #                                  block up to L = 2^12, and its tile shape changes with L below
    #                                  (2048 -> 8192 grew only 2.7-3x per doubling)
    ref_max_log2L: int = 13  # errors are measured against the exact reference up to here
    fit_min_log2L: int = 11  # exact-solver exponents are fitted on L >= 2^this (an L x L
    #                                  float64 matrix outgrows the 32 MiB L3 cache at L = 2^11)
    poly_fit_min_log2L: int = 13  # approximate solvers: L >= 2^this (below, poly's fixed per-call
    #                                  cost, ~3 ms, is a visible part of the time)
    # phase
    # threshold family: R ~ 0.3 c^2 ln L at d = 4 (measured; harness.families), so c = 1 is R ~ 0.3 ln L
    # (efficient), c ~ 1.3 the efficient/threshold line 0.5 ln L and c > 2.6 the hard regime
    # R > 2 ln L: the sweep goes to c = 4 so that all three regimes appear
    phase_c: list = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0])
    phase_L: list = field(default_factory=lambda: [8, 12])
    phase_d: int = 4
    phase_budget_rank: int = 715  # C(4+9, 9): degree 9 at d = 4
    phase_run_rank: int = 1365  # time the needed degree only up to this rank
    # rank / dimension
    rank_r: list = field(default_factory=lambda: [1, 2, 4, 8])
    rank_d: int = 8
    rank_L: int = 12
    rank_degree: int = 3  # fixed degree in the rank group, so only r varies
    dim_d: list = field(default_factory=lambda: [2, 4, 8])
    dim_L: list = field(default_factory=lambda: [9, 12])
    dim_eps: float = 1e-3
    # third-party solvers (--solver / --attention) and the exact baseline of a user's own study
    user_L: list = field(default_factory=lambda: [8, 13])
    baseline: str = REFERENCE
    baseline_max_log2L: int = 13  # an L x L float64 closed form: 1 GiB per buffer at 2^14

    @classmethod
    def default(cls, device: str = "cpu") -> StudyConfig:
        if device.startswith("cuda"):
            return cls.full(device)
        return cls()

    @classmethod
    def full(cls, device: str = "cpu") -> StudyConfig:
        gpu = device.startswith("cuda")
        return cls(
            device=device,
            dtype="float32" if gpu else "float64",
            repeats=5,
            budget_s=20.0,
            exact_L={
                "closed-form": [9, 15 if gpu else 14],
                "autograd": [9, 14 if gpu else 13],
                "streaming": [9, 15 if gpu else 13],
            },
            poly_L=[9, 20 if gpu else 19],
            eps_poly_L=[9, 18],
            chained_L=[9, 19 if gpu else 18],
            rf_L=[9, 20 if gpu else 18],
            rf_m=1024,
            ref_max_log2L=15 if gpu else 14,
            fit_min_log2L=11,
            poly_fit_min_log2L=13,
            fit_min_series={"streaming": 13, "streaming (causal)": 13},
            phase_c=[0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0],
            phase_L=[8, 14 if gpu else 13],
            rank_r=[1, 2, 4, 8, 16],
            rank_d=16,
            rank_L=13,
            dim_d=[2, 4, 6, 8, 12],
            dim_L=[9, 14 if gpu else 13],
        )

    @classmethod
    def tiny(cls) -> StudyConfig:
        """Seconds-long grid for tests."""
        return cls(
            repeats=1,
            warmup=0,
            budget_s=1.0,
            d=2,
            r=1,
            exact_L={"closed-form": [5, 7], "streaming": [5, 6]},
            poly_L=[5, 8],
            poly_degree=2,
            eps_poly_L=[5, 7],
            chained_L=[5, 6],
            chained_degree=2,
            rf_L=[5, 6],
            rf_m=16,
            causal_L={"streaming": [5, 6], "poly": [5, 8]},
            fit_min_series={},
            ref_max_log2L=7,
            fit_min_log2L=5,
            poly_fit_min_log2L=5,
            phase_c=[0.5, 3.0],
            phase_L=[5, 6],
            phase_d=2,
            phase_budget_rank=15,
            phase_run_rank=28,
            rank_r=[1, 2],
            rank_d=2,
            rank_L=6,
            rank_degree=2,
            dim_d=[2, 3],
            dim_L=[5, 6],
            user_L=[5, 7],
            baseline_max_log2L=7,
        )


def pow2(lo_hi: list) -> list[int]:
    lo, hi = lo_hi
    return [2**k for k in range(int(lo), int(hi) + 1)]


def config_dict(cfg: StudyConfig) -> dict:
    return asdict(cfg)


def apply_config_file(cfg: StudyConfig, path) -> StudyConfig:
    """Override fields of `cfg` from a small JSON (or, on Python >= 3.11, TOML) file (`run --config`),
    e.g. `{"user_L": [10, 16], "repeats": 3, "exact_L": {"streaming": [8, 14]}}`. An unknown key or a
    value of another type than the default's is a one-line HarnessError."""
    import json
    from dataclasses import fields
    from pathlib import Path

    from harness.errors import HarnessError

    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(
            f"--config {p}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise HarnessError(f"--config {p}: TOML needs Python 3.11; use a .json file") from None
    except ValueError as exc:
        kind = "TOML" if p.suffix == ".toml" else "JSON"
        raise HarnessError(f"--config {p}: not valid {kind} ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise HarnessError(f"--config {p}: expected an object of study settings, got a {type(data).__name__}")
    known = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    for key, val in data.items():
        if key not in known:
            raise HarnessError(
                f"--config {p}: unknown setting {key!r} (settings: {', '.join(sorted(known))})"
            )
        old = known[key]
        ok = isinstance(val, bool) == isinstance(old, bool) and (
            isinstance(val, type(old)) or (isinstance(old, float) and isinstance(val, int))
        )
        if ok and isinstance(old, list) and key.endswith("_L"):
            ok = len(val) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in val)
        if not ok:
            raise HarnessError(
                f"--config {p}: {key!r} must be a {type(old).__name__} like {old!r}, got {val!r}"
            )
        setattr(cfg, key, float(val) if isinstance(old, float) else val)
    return cfg
