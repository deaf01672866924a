"""The polynomial method: `poly` (factored gradients, O(N L k d)) and `poly-chained` (the LoRA paper's
own chained construction), one certificate for both.

* `features`     monomial features of the Taylor kernel and their hand-written backward
* `fused`        `poly_gradients`: every adapter gradient from the factored kernel, blocked over rows
* `chained`      the paper's Lemma 3.3-3.7 / Thm 3.1 chain, `PolyChainedSolver`
* `certificate`  `harness.theory.certify` plus the floating-point facts of a run
* `solver`       `PolySolver`
* `naive`        the dense O(L^2) twins every fast path is tested against
"""
