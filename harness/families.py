"""Instance families: (parameters, seed) -> Instance. Every instance records its generator, seed and
parameters in its metadata; the same arguments give the same bytes.

* `bounded`: inputs scaled so the paper's literal Γ quantities hold with equality:
  max(||X_q W_q||_inf, ||X_k W_k||_inf) = gamma (Hu et al. (arXiv:2406.03136) Thm 3.1, Thm 4.1;
  docs/theory.md §5.2), W_m the effective (adapted) weights. With the default beta = 1/d the score range
  obeys R = ||beta S||_inf <= gamma^2 (AS23's convention, docs/theory.md §4.1); with beta = 1 (the paper's
  (S4)) R can reach d gamma^2 (docs/theory.md §5.1, §7.6).
* `threshold`: `bounded` with gamma = c * sqrt(log L), the phase-transition scale (Hu et al.
  (arXiv:2406.03136) Thm 5.1; docs/theory.md §5.2). Measured (seeds 0-1, L = 2^8..2^12): the score
  range is R ~ 0.3 c^2 ln L at d = 4 (0.26-0.31; 0.25-0.27 at d = 2, 0.14-0.15 at d = 8), independent
  of c. So c = 1 is R ~ 0.3 ln L, inside the efficient regime R <= 0.5 ln L; the efficient/threshold
  line is at c ~ 1.3 and the hard regime R > 2 ln L starts at c ~ 2.6 (d = 4).
* `adversarial`: hostile corner cases for floating-point certificates (see its docstring).
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
    arrays: dict,
    dtype: str,
    alpha: float,
    beta: float,
    generator: str,
    seed: int,
    params: dict,
    causal: bool = False,
) -> Instance:
    """The family's Instance: arrays cast to `dtype`, metadata recording generator, seed and parameters
    (`causal` recorded only when set, so non-causal instances keep their bytes)."""
    if causal:
        params = {**params, "causal": True}
    meta = {
        "generator": generator,
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "params": params,
    }
    return Instance.from_arrays(
        {k: v.astype(dtype) for k, v in arrays.items()}, alpha=alpha, beta=beta, meta=meta, causal=causal
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
    causal: bool = False,
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
    return _instance(arrays, dtype, alpha, beta, generator, seed, params, causal)


def threshold(L: int, d: int, r: int = 1, c: float = 1.0, **kw) -> Instance:
    """`bounded` at gamma = c sqrt(log L). R ~ 0.3 c^2 ln L at d = 4 (module doc): c ~ 1.3 is the
    efficient/threshold line R = 0.5 ln L, c ~ 2.6 the start of the hard regime R = 2 ln L."""
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
    causal: bool = False,
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
    return _instance(arrays, dtype, alpha, beta, "gaussian", seed, params, causal)


W_MODES = ("normal", "rank_deficient", "unbalanced", "badly_scaled")


def adversarial(
    L: int,
    d: int,
    r: int = 1,
    seed: int = 0,
    Lk: int | None = None,
    N: int = 1,
    adapt: Iterable[str] = ("q", "k", "v"),
    gamma: float = 1.0,
    beta: float | None = None,
    alpha: float | None = None,
    spread: float = 0.0,
    outlier: float = 0.0,
    collinear: float = 0.0,
    w_mode: str = "normal",
    w_scale: float = 1.0,
    const_v: bool = False,
    dtype: str = "float64",
) -> Instance:
    """Hostile instances for certificate tests (numerical-analysis corner cases), all from one seed:

    * `Lk` not None: cross-attention with Lk keys (X_k, X_v drawn apart from X_q); else self-attention.
    * `spread` s > 0: every input row is scaled by 10^U(-s, 0) (mixed row norms).
    * `outlier` M > 0: one query row and one key row are multiplied by M (an outlier token).
    * `collinear` c > 0: keys lie within 10^-c of one line (near-collinear keys).
    * `w_mode`: "rank_deficient" zeroes about half the singular values of W_q and W_k (at least one
      when d > 1); "unbalanced" multiplies W_q by `w_scale` and divides W_k by it (same scores, very
      different |Q| and |K|); "badly_scaled" scales the columns of every W by 10^U(-e, e), e = log10(w_scale).
    * `const_v`: the first column of V = X_v W_v is constant over the keys.
    * inputs are then scaled by one common factor so that sqrt(|beta| max|Q| max|K|) = gamma.
    beta defaults to 1/d (negative and zero are allowed)."""
    adapt = _check(L, d, r, N, adapt)
    if w_mode not in W_MODES:
        raise HarnessError(f"unknown w_mode {w_mode!r}; choose from {', '.join(W_MODES)}")
    for name, v in (("gamma", gamma), ("w_scale", w_scale)):
        if not (v > 0 and math.isfinite(v)):
            raise HarnessError(f"{name} must be a positive number, got {v}")
    for name, v in (("spread", spread), ("outlier", outlier), ("collinear", collinear)):
        if not (v >= 0 and math.isfinite(v)):
            raise HarnessError(f"{name} must be a non-negative number, got {v}")
    if dtype not in ("float64", "float32"):
        raise HarnessError(f"unsupported dtype {dtype!r}; use float32 or float64")
    rng = np.random.default_rng(seed)
    beta = 1.0 / d if beta is None else float(beta)
    alpha = float(r) if alpha is None else float(alpha)
    W = {m: rng.normal(size=(d, d)) / math.sqrt(d) for m in ADAPTABLE}
    if w_mode == "rank_deficient":
        for m in ("q", "k"):
            U, s, Vt = np.linalg.svd(W[m])
            s[rng.permutation(d)[: max(1, d // 2) if d > 1 else 0]] = 0.0
            W[m] = (U * s) @ Vt
    elif w_mode == "unbalanced":
        W["q"], W["k"] = W["q"] * w_scale, W["k"] / w_scale
    elif w_mode == "badly_scaled":
        e = math.log10(w_scale)
        for m in ADAPTABLE:
            W[m] = W[m] * 10.0 ** rng.uniform(-e, e, size=(1, d))
    cross = Lk is not None
    Lk = L if Lk is None else int(Lk)
    if Lk < 1:
        raise HarnessError(f"Lk must be >= 1, got {Lk}")
    if const_v:
        W["v"][:, 0] = 0.0
        W["v"][0, 0] = 1.0
    arrays: dict[str, np.ndarray] = {f"W_{m}": W[m] for m in ADAPTABLE}
    eff = dict(W)
    for m in adapt:
        A = rng.normal(size=(r, d)) / math.sqrt(d)
        B = 0.5 * rng.normal(size=(d, r)) / math.sqrt(r)
        if const_v and m == "v":
            A[:, 0] = 0.0  # keeps column 0 of the effective W_v equal to e_0
        arrays[f"A_{m}"], arrays[f"B_{m}"] = A, B
        eff[m] = W[m] + (alpha / r) * B @ A

    def draw(n):
        X = rng.uniform(-1, 1, size=(N, n, d))
        if spread > 0:
            X = X * 10.0 ** rng.uniform(-spread, 0, size=(N, n, 1))
        return X

    Xq = draw(L)
    Xk, Xv = (draw(Lk), draw(Lk)) if cross else (Xq, Xq)
    if collinear > 0:
        u = rng.normal(size=d)
        Xk = rng.uniform(-1, 1, size=(N, Lk, 1)) * (u / np.linalg.norm(u)) + 10.0**-collinear * rng.normal(
            size=(N, Lk, d)
        )
        if not cross:
            Xq = Xv = Xk
    if const_v:
        Xv = np.array(Xv)
        Xv[..., 0] = 0.7
        if not cross:
            Xq = Xk = Xv
    if outlier > 0:
        Xq, Xk = np.array(Xq), np.array(Xk)
        cols = slice(1, None) if const_v else slice(None)  # keep the constant V column constant
        Xq[:, int(rng.integers(L)), cols] *= outlier
        if cross:
            Xk[:, int(rng.integers(Lk)), :] *= outlier
        else:
            Xk = Xv = Xq
    qn = float(np.abs(Xq @ eff["q"]).max())
    kn = float(np.abs(Xk @ eff["k"]).max())
    prod = abs(beta) * qn * kn
    s = gamma / math.sqrt(prod) if prod > 0 else 1.0
    Xq, Xk, Xv = (x * s for x in (Xq, Xk, Xv)) if cross else (Xq * s,) * 3
    Y = rng.normal(size=(N, L, d)) * 0.5
    arrays.update(X_q=Xq, X_k=Xk, X_v=Xv, Y=Y)
    arrays = {k: np.asarray(v, np.float64) for k, v in arrays.items()}
    params = dict(
        L=L,
        Lk=Lk if cross else None,
        d=d,
        r=r,
        N=N,
        adapt=",".join(adapt) or "none",
        gamma=gamma,
        beta=beta,
        alpha=alpha,
        spread=spread,
        outlier=outlier,
        collinear=collinear,
        w_mode=w_mode,
        w_scale=w_scale,
        const_v=const_v,
        dtype=dtype,
    )
    return _instance(arrays, dtype, alpha, beta, "adversarial", seed, params)


FAMILIES = {"bounded": bounded, "threshold": threshold, "outliers": outliers}
