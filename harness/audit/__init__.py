"""Audit a pretrained transformer against the theory's regimes.

Loads a local Hugging Face model folder offline, runs a text through it, captures every self-attention
layer's input X and its per-head query/key/value maps (weights and biases) with forward hooks, and turns
each head into a harness `Instance`, so the norm quantities of the theory (docs/theory.md §4.1, §5.1-§5.2,
§7.5-§7.6) and the solvers can be evaluated on real attention.

Exact head -> Instance constructions (both reproduce the head's own attention output exactly):

* ``projected`` (default, d = d_head). A head computes Q = X W_q^h + b_q^h, K = X W_k^h + b_k^h,
  V = X W_v^h + b_v^h and softmax(beta Q K^T) V with beta = the module's own scaling (1/sqrt(d_head)).
  With X' = [X, 1] (a constant-1 column carries the bias) and W'_m = [W_m^h; b_m^h] ((D+1) x d_head),
  the instance is the cross-attention form X_q = X' W'_q = Q, X_k = K, X_v = V, W*_q = W*_k = W*_v = I.
  Cost: O(L D d_head) to form it; exact solvers then cost O(L^2 d_head); the polynomial method's
  feature rank is binom(d_head + g, g). A LoRA adapter on the identity, W_q = I + (alpha/r) B A, is the
  rank-r update W'_q (alpha/r) B A of the head's own (D+1) x d_head query map (its left factor lies in
  the column space of W'_q).
* ``padded`` (d = D + 1, self-attention). X_q = X_k = X_v = X' = [X, 1] and W*_m = [W'_m | 0], the head's
  (D+1) x d_head map padded with zero columns to a square (D+1) x (D+1) matrix; the output is the head's
  output followed by D + 1 - d_head zero columns. Cost: exact solvers O(L^2 (D+1) + L (D+1)^2), feature
  rank binom(D + 1 + g, g) - the polynomial method is hopeless at this d, which is itself a finding.

Both give the same score matrix beta Q K^T, hence the same R = ||beta Q K^T||_inf (docs/theory.md §4.1,
§5.1) and the same Gamma_QK = max(||Q||_inf, ||K||_inf) (docs/theory.md §5.1-§5.2); the paper's conditions
on the raw inputs (||X^(K)||_inf, ...) depend on the construction and are reported for it, next to the
hidden states' own max-norm ||X||_inf.

Causal (decoder) heads become causal Instances (query j attends keys m <= j, `Instance.causal`), so
they get everything an encoder head gets: R over the unmasked entries, Gamma, regime, degree, rank, the
exact gradients and the errors of `poly` and `random-features`.

Supported attention modules (matched by attributes, so subclasses and relatives work):
BERT-style (``query``/``key``/``value`` Linear: BERT, RoBERTa, MiniLM, ELECTRA, ...), GPT-2-style
(``c_attn`` Conv1D), OPT-style (``q_proj``/``k_proj``/``v_proj`` with ``out_proj``/``o_proj``) and
Llama-style (the same projections with rotary embeddings passed as ``position_embeddings`` and shared
key/value heads: Llama, Mistral, Qwen2, SmolLM, ...; `rotary`: the rotated Q, K are captured per head and
only the ``projected`` construction is exact for them). A model may also be a single ``*.gguf`` file.

* `loading`   the model folder (offline) and the text
* `capture`   attention modules and forward hooks: per-layer X, per-head maps, the merged output
* `rotary`    rotary embeddings and grouped-query attention (Llama-style heads)
* `heads`     one head's scores, R, norms, and its exact LoRA `Instance`
* `analysis`  per-head analysis against the theory, the gradient errors, `run_audit`
* `report`    the terminal table, JSON and the plot
"""
