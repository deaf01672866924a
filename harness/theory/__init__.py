"""Theory: score range, regime, Taylor degree/rank and rigorous gradient-error certificates for the
polynomial-method solvers (docs/theory.md §4, §5; the corrected conventions of §7.1, §7.2, §7.5, §7.6).

Pure functions of an Instance (nothing is mutated). Used by the `poly` / `poly-chained` solvers, the
scaling study and the model audit. The derivation of `gradient_error_bound` is in docs/fast-solvers.md.

* `norms`        effective weights, projections, the score range R (exact and bounded), the paper's Gamma
* `regimes`      efficient / threshold / hard: R against log L, and at finite L the predicted cost
* `taylor`       the Taylor polynomial's relative error, degree and feature rank
* `bounds`       the certificate chain: kernel error -> adapter-gradient error
* `certificate`  `certify` (the solver's degree choice and score range, a priori bound, predicted
                 cost, regime) and the refusal line; the solver's a posteriori certificate is
                 harness.solvers.poly.bound
* `causal`       causal instances: R over the unmasked scores, per-row prefix terms, causal poly's cost

Conventions
-----------
* R := max_i ||beta S_i||_inf, S_i = X_q,i W_q W_k^T X_k,i^T with the *effective* (adapted) weights
  W_m = W*_m + alpha/r B_m A_m (docs/theory.md §5.1: classify by R, keep beta explicit) is
  `score_range`; certificates, the study and the audit use ONE score range, the centred one
  max |beta q_j . (k_m - mu_K)| (`certificate_score_range`: exact up to 2^18 score entries, else the
  O(L d) bound), because softmax does not see the keys' mean.
* The kernel approximated by `poly` is P_g(beta S), P_g(x) = sum_{t<=g} x^t/t! (docs/theory.md §4.1).
* eps_rel is the entrywise relative error of P_g(beta S) against exp(beta S) on |x| <= R.
"""

from harness.theory.bounds import gradient_error_bound, gradient_error_bound_rows, gradient_error_coefficient
from harness.theory.causal import causal_poly_op_count
from harness.theory.certificate import (
    DEFAULT_EPS,
    DEFAULT_MAX_RANK,
    MAX_DEGREE_TRIES,
    certify,
    exact_op_count,
    fused_op_count,
    moments_op_count,
    poly_op_count,
    refusal_message,
)
from harness.theory.norms import (
    EXACT_R_ENTRIES,
    HULL_MAX_D,
    centred_projections,
    centred_row_bounds,
    certificate_score_range,
    effective_np,
    paper_gammas,
    projections,
    row_score_bounds,
    score_range,
    score_range_bound,
    score_range_centred,
)
from harness.theory.regimes import EFFICIENT_C, THRESHOLD_C, classify, regime
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
    "MAX_DEGREE_TRIES",
    "THRESHOLD_C",
    "causal_poly_op_count",
    "centred_projections",
    "centred_row_bounds",
    "certificate_score_range",
    "certify",
    "classify",
    "effective_np",
    "exact_op_count",
    "feature_rank",
    "gradient_error_bound",
    "gradient_error_bound_rows",
    "gradient_error_coefficient",
    "log_taylor_rel_error",
    "normalised_rel_error",
    "paper_gammas",
    "poly_op_count",
    "moments_op_count",
    "fused_op_count",
    "projections",
    "refusal_message",
    "regime",
    "row_deltas",
    "row_score_bounds",
    "score_range",
    "score_range_bound",
    "score_range_centred",
    "taylor_degree",
    "taylor_rel_error",
    "taylor_rel_error_paper",
]
