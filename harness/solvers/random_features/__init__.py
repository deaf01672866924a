"""`random-features`: positive random features (FAVOR+). `features` (the estimator and its factored
loss), `solver` (autograd through it), `naive` (the dense twin of the same estimator)."""
