"""performer-pytorch 1.1.4, FAVOR+ (`FastAttention`: positive orthogonal random features).

lora-harness check --attention examples.peers.performer:favor --claim-exponent 1.1
"""

import math

import torch

REQUIRES = [
    "performer-pytorch==1.1.4",
    "axial-positional-embedding==0.3.12",
    "local-attention==1.11.2",
    "hyper-connections==0.4.11",
    "torch-einops-utils==0.2.0",
    "einops==0.8.2",
]
_modules: dict = {}


def favor(q, k, v, *, scale, nb_features=256, seed=0):
    """FastAttention(dim_heads=d, nb_features=256): an unbiased estimate of softmax attention."""
    from performer_pytorch import FastAttention

    d = q.shape[-1]
    key = (d, q.dtype, nb_features, seed)
    if key not in _modules:
        torch.manual_seed(seed)  # the projection is drawn at construction
        _modules[key] = FastAttention(dim_heads=d, nb_features=nb_features).to(q.dtype)
    s = math.sqrt(scale * math.sqrt(d))  # FAVOR+ estimates exp(q.k / sqrt(d)): the rest on q and k
    return _modules[key](q[:, None] * s, k[:, None] * s, v[:, None])[:, 0]


favor.exact = False
ENTRIES = {
    "performer FAVOR+ (m=256)": {
        "fn": favor,
        "claim_exponent": 1.1,
        "promise": "unbiased estimate, error ~ m^-1/2 (no tolerance stated)",
    }
}
