"""nystrom-attention 0.0.14 (`NystromAttention`: segment-mean landmarks, iterative pseudo-inverse).

With dim = 3d and x = [q | k | v], to_qkv is the identity and to_out selects the first d outputs.

    lora-harness check --attention examples.peers.nystrom:nystrom --claim-exponent 1.1
"""

import torch

REQUIRES = ["nystrom-attention==0.0.14", "einops==0.8.2"]
_modules: dict = {}


def _module(d, dtype, landmarks):
    from nystrom_attention import NystromAttention

    key = (d, dtype, landmarks)
    if key not in _modules:
        m = NystromAttention(dim=3 * d, dim_head=d, heads=1, num_landmarks=landmarks, residual=False).to(
            dtype
        )
        with torch.no_grad():
            m.to_qkv.weight.copy_(torch.eye(3 * d, dtype=dtype))
            m.to_out[0].weight.copy_(torch.eye(3 * d, d, dtype=dtype))
            m.to_out[0].bias.zero_()
        _modules[key] = m.requires_grad_(False)
    return _modules[key]


def nystrom(q, k, v, *, scale, landmarks=256):
    """Nystrom attention with the library's default 256 landmarks."""
    d = q.shape[-1]
    m = _module(d, q.dtype, landmarks)
    return m(torch.cat([q * (scale / m.scale), k, v], -1))[..., :d]


def nystrom8(q, k, v, *, scale):
    """The same with 8 landmarks (fewer landmarks than tokens from L = 9 on)."""
    return nystrom(q, k, v, scale=scale, landmarks=8)


for f in (nystrom, nystrom8):
    f.exact = False
    f.self_attention_only = True
ENTRIES = {
    "nystrom (256 landmarks)": {"fn": nystrom, "claim_exponent": 1.1, "promise": "approximation"},
    "nystrom (8 landmarks)": {"fn": nystrom8, "promise": "approximation"},
}
