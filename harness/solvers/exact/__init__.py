"""Exact solvers: `autograd` (the float64 reference), `closed-form` (the quadratic closed form with the
p-matrix), `streaming` (the same gradient strip by strip, O(L d) memory, exact at any score range)
and `sdpa` (torch's scaled_dot_product_attention + autograd, each backend);
`naive` holds their obviously-correct twins."""
