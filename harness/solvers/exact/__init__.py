"""Exact solvers: `autograd` (the float64 reference), `closed-form` (the quadratic closed form with the
p-matrix) and `streaming` (the same gradient tile by tile with online log-sum-exp, O(L d) memory);
`naive` holds their obviously-correct twins."""
