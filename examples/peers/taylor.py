"""taylor-series-linear-attention 0.2.0 (`TaylorSeriesLinearAttn`: exp(x) ~ 1 + x + x^2/2 features).

The module has its own projections: with dim = 3d and x = [q | k | v], its to_q / to_kv are set to
the selections of q, k and v (the library's code runs unchanged).

    lora-harness check --attention examples.peers.taylor:taylor --claim-exponent 1.1
"""

import torch

REQUIRES = [
    "taylor-series-linear-attention==0.2.0",
    "jaxtyping==0.3.11",
    "wadler-lindig",
    "rotary-embedding-torch==0.9.1",
    "einops==0.8.2",
]
_modules: dict = {}


def _module(d, dtype):
    from taylor_series_linear_attention import TaylorSeriesLinearAttn

    if (d, dtype) not in _modules:
        m = TaylorSeriesLinearAttn(dim=3 * d, dim_head=d, heads=1, combine_heads=False).to(dtype)
        I, Z = torch.eye(d, dtype=dtype), torch.zeros(d, d, dtype=dtype)
        with torch.no_grad():
            m.to_q[0].weight.copy_(torch.cat([I, Z, Z], 1))
            m.to_kv[0].weight.copy_(torch.cat([torch.cat([Z, I, Z], 1), torch.cat([Z, Z, I], 1)], 0))
        _modules[(d, dtype)] = m.requires_grad_(False)
    return _modules[(d, dtype)]


def taylor(q, k, v, *, scale):
    """Second-order Taylor linear attention (self-attention: one sequence x)."""
    m = _module(q.shape[-1], q.dtype)
    return m(torch.cat([q * (scale / m.scale), k, v], -1))


taylor.exact = False
taylor.self_attention_only = True
ENTRIES = {
    "taylor (2nd order)": {
        "fn": taylor,
        "claim_exponent": 1.1,
        "promise": "2nd-order Taylor of exp; no tolerance stated",
    }
}
