"""A third-party-style solver (a plain callable on a mapping of tensors), used by the CLI tests."""

import torch

from harness.losses import lora_loss


def exact_solver(t):
    """autograd on the loss, written the way a user would."""
    t = dict(t)
    r = next((t[k].shape[0] for k in ("A_q", "A_k", "A_v") if k in t), 1)
    leaves = [k for k in ("A_q", "B_q", "A_k", "B_k", "A_v", "B_v") if k in t]
    for k in leaves:
        t[k] = t[k].clone().requires_grad_(True)
    loss = lora_loss(t, float(t["alpha"]), float(t["beta"]), r)
    gs = torch.autograd.grad(loss, [t[k] for k in leaves])
    out = {"d" + k: g for k, g in zip(leaves, gs)}
    out["loss"] = loss.detach()
    return out


exact_solver.exact = True


def broken_shape(t):
    g = exact_solver(t)
    g["dA_q"] = g["dA_q"].T
    return g


def sdpa_attention(q, k, v, scale=None):
    """An attention function as users write them: torch's scaled_dot_product_attention."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)


def naive_attention(q, k, v, scale=None):
    """softmax(scale q k^T) v, spelled out."""
    s = (q @ k.transpose(-1, -2)) * scale
    return torch.softmax(s, dim=-1) @ v


def slow_exact_solver(t):
    """exact_solver plus a fixed 0.15 s pause (for kill-mid-grid tests)."""
    import time

    time.sleep(0.15)
    return exact_solver(t)


slow_exact_solver.exact = True


def dies_once(t):
    """Kills its own (worker) process the first time it runs while $LORA_TEST_DIE_ONCE names a file
    that does not exist yet; afterwards an exact solver. For worker-loss tests."""
    import os

    marker = os.environ.get("LORA_TEST_DIE_ONCE")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return exact_solver(t)


def always_dies(t):
    """Kills its worker every time (a cell that can never finish)."""
    import os

    os._exit(1)


# ---- callables that break the calling convention (usage errors, exit 2, nothing written)
def wrong_signature(t, mask):
    """Needs a second argument the harness never passes."""
    return exact_solver(t)


def returns_tuple(t):
    return tuple(exact_solver(t).values())


def wrong_keys(t):
    return {k.replace("dA", "grad_A"): v for k, v in exact_solver(t).items()}


def zeros(t):
    """Zero gradients of the right shapes (no claim, no certificate: accuracy is 'not claimed')."""
    return {f"d{p}_{m}": torch.zeros_like(t[f"{p}_{m}"]) for m in "qkv" if f"A_{m}" in t for p in "AB"}


def noisy(t):
    """Exact gradients and a library-style warning on every call."""
    import warnings

    warnings.warn("torch.cuda.amp.autocast(args...) is deprecated", FutureWarning, stacklevel=1)
    return exact_solver(t)


noisy.exact = True


def dense_no_ops(t):
    """Dense O(L^2 d) exact gradients that report no op count."""
    from tests.planted import _dense

    out = _dense(t)
    out.pop("ops")
    return out


def checkpointed_attention(q, k, v, *, scale):
    """Exact attention behind reentrant checkpointing, which refuses torch.autograd.grad."""
    from torch.utils.checkpoint import checkpoint

    def f(q, k, v):
        return torch.softmax(scale * (q @ k.transpose(-1, -2)), dim=-1) @ v

    return checkpoint(f, q, k, v, use_reentrant=True)


checkpointed_attention.exact = True


def attention_wrong_signature(q, k, v):
    return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v


def attention_wrong_shape(q, k, v, *, scale):
    return (torch.softmax(scale * (q @ k.transpose(-1, -2)), dim=-1) @ v)[:, :1]
