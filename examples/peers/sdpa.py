"""torch SDPA: exact softmax attention; its signature is the referee's contract as it is.

    lora-harness check --attention torch.nn.functional:scaled_dot_product_attention --exact \
        --claim-eps 1e-8 --claim-exponent 2
"""

from torch.nn.functional import scaled_dot_product_attention

REQUIRES: list[str] = []
ENTRIES = {
    "sdpa": {
        "fn": scaled_dot_product_attention,
        "exact": True,
        "claim_eps": 1e-8,
        "claim_exponent": 2.0,
        "promise": "exact (math backend on CPU)",
    }
}
