"""linear-attention-transformer 0.19.1 (`linear_attn`: softmax over q's features and k's positions).

Not an approximation of softmax(scale q k^T) v (a different operator; `scale` is unused): nothing
is claimed about accuracy, only linear time.

    lora-harness check --attention examples.peers.linear_attention:linear --claim-exponent 1.1
"""

REQUIRES = [
    "linear-attention-transformer==0.19.1",
    "linformer==0.2.3",
    "product-key-memory==0.3.0",
    "colt5-attention==0.11.2",
    "local-attention==1.11.2",
    "axial-positional-embedding==0.3.12",
    "hyper-connections==0.4.11",
    "torch-einops-utils==0.2.0",
    "packaging",
    "einops==0.8.2",
]


def linear(q, k, v, *, scale):
    """linear_attn (Shen et al.'s efficient attention)."""
    from linear_attention_transformer.linear_attention_transformer import linear_attn

    return linear_attn(q[:, None], k[:, None], v[:, None])[:, 0]


linear.exact = False
ENTRIES = {
    "linear-attention-transformer linear_attn": {
        "fn": linear,
        "claim_exponent": 1.1,
        "promise": "a different operator; linear time",
    }
}
