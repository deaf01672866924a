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
