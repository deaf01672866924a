"""memory-efficient-attention-pytorch 0.1.6: `memory_efficient_attention` (chunked, "exact") and
`FlashAttentionFunction` (flash attention in plain pytorch). Both use scale d^-1/2: q carries the rest.

    lora-harness check --attention examples.peers.mea:chunked --claim-eps 1e-8 --claim-exponent 2
    lora-harness check --attention examples.peers.mea:flash --claim-eps 1e-3 --claim-exponent 2
"""

import math

REQUIRES = ["memory-efficient-attention-pytorch==0.1.6", "einops==0.8.2"]


def chunked(q, k, v, *, scale):
    """memory_efficient_attention: exact attention in query/key chunks with checkpointing."""
    from memory_efficient_attention_pytorch import memory_efficient_attention

    s = scale * math.sqrt(q.shape[-1])
    return memory_efficient_attention(q[:, None] * s, k[:, None], v[:, None])[:, 0]


def flash(q, k, v, *, scale):
    """FlashAttentionFunction (online softmax forward, recomputing backward)."""
    from memory_efficient_attention_pytorch.flash_attention import FlashAttentionFunction

    s = scale * math.sqrt(q.shape[-1])
    return FlashAttentionFunction.apply(q[:, None] * s, k[:, None], v[:, None], None, False, 512, 1024)[:, 0]


chunked.exact = True
flash.exact = True
flash.supports_float64 = False  # its row sums / maxima are allocated in the default dtype (float32)
ENTRIES = {
    "mea memory_efficient_attention": {
        "fn": chunked,
        "claim_eps": 1e-8,
        "claim_exponent": 2.0,
        "promise": "exact",
    },
    "mea FlashAttentionFunction (float32)": {
        "fn": flash,
        "claim_eps": 1e-3,
        "claim_exponent": 2.0,
        "promise": "exact (float32 buffers)",
    },
}
