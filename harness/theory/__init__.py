"""Theory: score range, regime, Taylor degree/rank and rigorous gradient-error certificates for the
polynomial-method solvers (docs/theory.md §4, §5; the corrected conventions of §7.1, §7.2, §7.5, §7.6).

Pure functions of an Instance (nothing is mutated). Used by the `poly` / `poly-chained` solvers, the
scaling study and the model audit. The derivation of `gradient_error_bound` is in docs/fast-solvers.md.

* `norms`        effective weights, projections, the score range R (exact and bounded), the paper's Gamma
* `regimes`      efficient / threshold / hard from R against log L
* `taylor`       the Taylor polynomial's relative error, degree and feature rank
* `bounds`       the certificate chain: kernel error -> adapter-gradient error
* `certificate`  `certify` (degree, rank, bound, predicted cost) and the refusal line
* `causal`       causal instances: R over the unmasked scores, per-row prefix terms, causal poly's cost

Conventions
-----------
* R := max_i ||beta S_i||_inf, S_i = X_q,i W_q W_k^T X_k,i^T with the *effective* (adapted) weights
  W_m = W*_m + alpha/r B_m A_m (docs/theory.md §5.1: classify by R, keep beta explicit).
* The kernel approximated by `poly` is P_g(beta S), P_g(x) = sum_{t<=g} x^t/t! (docs/theory.md §4.1).
* eps_rel is the entrywise relative error of P_g(beta S) against exp(beta S) on |x| <= R.
"""

from harness.theory.bounds import gradient_error_bound, gradient_error_bound_rows, gradient_error_coefficient
from harness.theory.certificate import (
    DEFAULT_EPS,
    DEFAULT_MAX_RANK,
    EXACT_R_ENTRIES,
    certify,
    poly_op_count,
    refusal_message,
)
from harness.theory.norms import (
    HULL_MAX_D,
    effective_np,
    paper_gammas,
    projections,
    row_score_bounds,
    score_range,
    score_range_bound,
)
from harness.theory.regimes import EFFICIENT_C, THRESHOLD_C, regime
from harness.theory.taylor import (
    MAX_DEGREE,
    feature_rank,
    log_taylor_rel_error,
    normalised_rel_error,
    row_deltas,
    taylor_degree,
    taylor_rel_error,
    taylor_rel_error_paper,
)

__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_MAX_RANK",
    "EFFICIENT_C",
    "EXACT_R_ENTRIES",
    "HULL_MAX_D",
    "MAX_DEGREE",
    "THRESHOLD_C",
    "certify",
    "effective_np",
    "feature_rank",
    "gradient_error_bound",
    "gradient_error_bound_rows",
    "gradient_error_coefficient",
    "log_taylor_rel_error",
    "normalised_rel_error",
    "paper_gammas",
    "poly_op_count",
    "projections",
    "refusal_message",
    "regime",
    "row_deltas",
    "row_score_bounds",
    "score_range",
    "score_range_bound",
    "taylor_degree",
    "taylor_rel_error",
    "taylor_rel_error_paper",
]
