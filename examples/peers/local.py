"""local-attention 1.11.2 (`LocalAttention`: windows that see one window either side, autopad).

Softmax attention only while every query sees every key (L <= 2 x window): declined beyond.

    lora-harness check --attention examples.peers.local:local --claim-eps 1e-8
"""

from harness import Refusal

REQUIRES = [
    "local-attention==1.11.2",
    "hyper-connections==0.4.11",
    "torch-einops-utils==0.2.0",
    "einops==0.8.2",
]
WINDOW = 8
_modules: dict = {}


def local(q, k, v, *, scale):
    """LocalAttention(window_size=8, look_backward=1, look_forward=1, autopad=True, scale=scale)."""
    from local_attention import LocalAttention

    if q.shape[1] > 2 * WINDOW:
        raise Refusal(f"local attention is softmax attention only for L <= {2 * WINDOW}")
    if scale not in _modules:
        _modules[scale] = LocalAttention(
            window_size=WINDOW, look_backward=1, look_forward=1, autopad=True, scale=scale
        )
    return _modules[scale](q, k, v)


local.exact = True
local.self_attention_only = True
ENTRIES = {"local (window 8)": {"fn": local, "claim_eps": 1e-8, "promise": "softmax within the window"}}
