"""Instance families: (parameters, seed) -> Instance. Every instance records its generator, seed and
parameters in its metadata; the same arguments give the same bytes.

* `bounded`: inputs scaled so the paper's literal Γ quantities hold with equality:
  max(||X_q W_q||_inf, ||X_k W_k||_inf) = gamma (Hu et al. (arXiv:2406.03136) Thm 3.1, Thm 4.1;
  docs/theory.md §5.2), W_m the effective (adapted) weights. With the default beta = 1/d the score range
  obeys R = ||beta S||_inf <= gamma^2 (AS23's convention, docs/theory.md §4.1); with beta = 1 (the paper's
  (S4)) R can reach d gamma^2 (docs/theory.md §5.1, §7.6).
* `threshold`: `bounded` with gamma = c * sqrt(log L), the phase-transition scale (Hu et al.
  (arXiv:2406.03136) Thm 5.1; docs/theory.md §5.2).
* `outliers`: `bounded` plus a few large input entries (an "outlier" feature, as in the
  outlier-free transformer discussion), which drives R up while most entries stay small.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from harness.errors import HarnessError
from harness.instance import ADAPTABLE, Instance
from harness.lora import effective_weights

GENERATOR_VERSION = 1


def family_memory(L: int, d: int, N: int = 1) -> int:
    """Upper bound on the bytes a family + `save_instance` allocate: 16 (N, L, d) float64 arrays
    (inputs, products, dtype copies, the frozen copies, the file's bytes; tracemalloc measured 10 to
    12 at N = 4, L = 4096, d = 64) + 8 (L + d) d doubles + 8 MiB."""
    return 16 * N * L * d * 8 + 8 * (L + d) * d * 8 + (8 << 20)


def _check_scalars(seed, beta, alpha) -> None:
    """Seeds >= 0 (numpy's generators), finite beta and alpha (inf used to warn in a matmul first)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise HarnessError(f"seed must be an integer >= 0, got {seed!r}")
    for name, v in (("beta", beta), ("alpha", alpha)):
        if v is not None and not math.isfinite(float(v)):
            raise HarnessError(f"{name} must be a finite number, got {v}")


def _check(L: int, d: int, r: int, N: int, adapt: Iterable[str]) -> tuple[str, ...]:
    for name, v in (("L", L), ("d", d), ("N", N)):
        if int(v) < 1:
            raise HarnessError(f"{name} must be >= 1, got {v}")
    given = set(adapt)
    bad = given - set(ADAPTABLE)
    adapt = tuple(m for m in ADAPTABLE if m in given)
    if bad:
        raise HarnessError(f"unknown adapter {sorted(bad)[0]!r}; choose from q, k, v")
    if adapt and not 1 <= r <= d:
        raise HarnessError(f"LoRA rank r={r} must satisfy 1 <= r <= d={d}")
    return adapt


def _instance(
    arrays: dict, dtype: str, alpha: float, beta: float, generator: str, seed: int, params: dict
) -> Instance:
    """The family's Instance: arrays cast to `dtype`, metadata recording generator, seed and parameters."""
    meta = {
        "generator": generator,
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "params": params,
    }
    return Instance.from_arrays(
        {k: v.astype(dtype) for k, v in arrays.items()}, alpha=alpha, beta=beta, meta=meta
    )


def parse_adapt(text: str) -> tuple[str, ...]:
    """'q,v' -> ('q', 'v'); 'none' -> (). An empty text is refused: more often an unset shell
    variable than a wish for no adapters."""
    items = [s.strip().lower() for s in text.replace(" ", ",").split(",") if s.strip()]
    if not items:
        raise HarnessError(f"--adapt {text!r} is empty; give e.g. q,v, or none for no adapters")
    if items == ["none"]:
        return ()
    bad = [s for s in items if s not in ADAPTABLE]
    if bad:
        raise HarnessError(f"unknown adapter {bad[0]!r} in --adapt; choose from q, k, v")
    return tuple(m for m in ADAPTABLE if m in items)


def bounded(
    L: int,
    d: int,
    r: int = 1,
    gamma: float = 1.0,
    adapt: Iterable[str] = ("q", "v"),
    seed: int = 0,
    N: int = 1,
    beta: float | None = None,
    alpha: float | None = None,
    cross: bool = False,
    dtype: str = "float64",
    generator: str = "bounded",
    extra_meta: dict | None = None,
) -> Instance:
    """Random instance with max(||X_q W_q||_inf, ||X_k W_k||_inf) = gamma exactly (see module doc)."""
    adapt = _check(L, d, r, N, adapt)
    _check_scalars(seed, beta, alpha)
    if not (gamma > 0 and math.isfinite(gamma)):
        raise HarnessError(f"gamma must be a positive number, got {gamma}")
    rng = np.random.default_rng(seed)
    beta = 1.0 / d if beta is None else float(beta)
    alpha = float(r) if alpha is None else float(alpha)
    W = {m: rng.normal(size=(d, d)) / math.sqrt(d) for m in ADAPTABLE}
    arrays: dict[str, np.ndarray] = {f"W_{m}": W[m] for m in ADAPTABLE}
    for m in adapt:
        arrays[f"A_{m}"] = rng.normal(size=(r, d)) / math.sqrt(d)
        arrays[f"B_{m}"] = 0.5 * rng.normal(size=(d, r)) / math.sqrt(r)
    eff = effective_weights(arrays, alpha, r)
    shape = (N, L, d)
    Xq = rng.uniform(-1, 1, size=shape)
    Xk = rng.uniform(-1, 1, size=shape) if cross else Xq
    Xv = rng.uniform(-1, 1, size=shape) if cross else Xq
    if cross:
        Xq = Xq * (gamma / np.abs(Xq @ eff["q"]).max())
        Xk = Xk * (gamma / np.abs(Xk @ eff["k"]).max())
    else:
        scale = gamma / max(np.abs(Xq @ eff["q"]).max(), np.abs(Xq @ eff["k"]).max())
        Xq = Xk = Xv = Xq * scale
    Y = rng.normal(size=shape) * 0.5
    arrays.update(X_q=Xq, X_k=Xk, X_v=Xv, Y=Y)
    if dtype not in ("float64", "float32"):
        raise HarnessError(f"unsupported dtype {dtype!r}; use float32 or float64")
    params = dict(
        L=L,
        d=d,
        r=r,
        gamma=gamma,
        adapt=",".join(adapt) or "none",
        N=N,
        beta=beta,
        alpha=alpha,
        cross=cross,
        dtype=dtype,
    )
    params.update(extra_meta or {})
    return _instance(arrays, dtype, alpha, beta, generator, seed, params)


def threshold(L: int, d: int, r: int = 1, c: float = 1.0, **kw) -> Instance:
    """`bounded` at gamma = c sqrt(log L): c < 1 below, c ~ 1 at, c > 1 above the threshold."""
    gamma = c * math.sqrt(math.log(max(L, 2)))
    return bounded(L, d, r, gamma=gamma, generator="threshold", extra_meta={"c": c}, **kw)


def outliers(
    L: int,
    d: int,
    r: int = 1,
    gamma: float = 1.0,
    n_outliers: int = 2,
    magnitude: float = 20.0,
    seed: int = 0,
    **kw,
) -> Instance:
    """`bounded`, then `n_outliers` tokens get one feature multiplied by `magnitude`."""
    inst = bounded(
        L,
        d,
        r,
        gamma=gamma,
        seed=seed,
        generator="outliers",
        extra_meta={"n_outliers": n_outliers, "magnitude": magnitude},
        **kw,
    )
    rng = np.random.default_rng([seed, 1])
    X = {k: np.array(inst.arrays[k]) for k in ("X_q", "X_k", "X_v")}
    rows = rng.choice(L, size=min(n_outliers, L), replace=False)
    col = int(rng.integers(d))
    same = inst.self_attention
    for k in ("X_q",) if same else ("X_q", "X_k", "X_v"):
        X[k][..., rows, col] *= magnitude
    if same:
        X["X_k"] = X["X_v"] = X["X_q"]
    return inst.replace(**X)


def gaussian(
    L: int,
    d: int,
    r: int = 1,
    adapt: Iterable[str] = ("q", "v"),
    seed: int = 0,
    N: int = 1,
    Lk: int | None = None,
    scale: float = 1.0,
    beta: float | None = None,
    alpha: float | None = None,
    cross: bool = True,
    dtype: str = "float64",
) -> Instance:
    """Unstructured instance for property tests: i.i.d. N(0, scale^2) inputs (X_q of length L, X_k and
    X_v of length Lk), N(0, 1/d) weights and adapters, N(0, 1) target. Self-attention when not `cross`."""
    adapt = _check(L, d, r, N, adapt)
    _check_scalars(seed, beta, alpha)
    Lk = L if Lk is None or not cross else int(Lk)
    if Lk < 1:
        raise HarnessError(f"Lk must be >= 1, got {Lk}")
    rng = np.random.default_rng(seed)
    beta = 1.0 / math.sqrt(d) if beta is None else float(beta)
    alpha = float(r) if alpha is None else float(alpha)
    arrays = {f"W_{m}": rng.normal(size=(d, d)) / math.sqrt(d) for m in ADAPTABLE}
    for m in adapt:
        arrays[f"A_{m}"] = rng.normal(size=(r, d)) / math.sqrt(d)
        arrays[f"B_{m}"] = rng.normal(size=(d, r)) / math.sqrt(d)
    Xq = scale * rng.normal(size=(N, L, d))
    if cross:
        arrays.update(X_k=scale * rng.normal(size=(N, Lk, d)), X_v=scale * rng.normal(size=(N, Lk, d)))
    arrays.update(X_q=Xq, Y=rng.normal(size=(N, L, d)))
    params = dict(
        L=L,
        Lk=Lk,
        d=d,
        r=r,
        adapt=",".join(adapt) or "none",
        N=N,
        scale=scale,
        beta=beta,
        alpha=alpha,
        cross=cross,
        dtype=dtype,
    )
    return _instance(arrays, dtype, alpha, beta, "gaussian", seed, params)


FAMILIES = {"bounded": bounded, "threshold": threshold, "outliers": outliers}
