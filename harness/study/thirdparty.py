"""Third-party solvers in the study: `run --solver SPEC` (a registered name, `module:attr` or entry
point, resolved by `harness.solvers.get_solver`) and `run --attention MODULE:FN` (an attention
function, wrapped into a Solver).

`from_attention` here is the study's local stand-in for the referee's `harness.from_attention`
(issue 11), with the same contract, so the study switches to it unchanged: `fn(q, k, v, scale=beta)`
takes (N, L, d) tensors and returns softmax(beta q k^T) v of shape (N, Lq, d), as
`torch.nn.functional.scaled_dot_product_attention` does. The wrapper builds Q, K, V from the
instance's LoRA weights (W_m = W*_m + (alpha/r) B_m A_m, `harness.losses.effective_weights`), forms
the loss 1/(2N) ||out - Y||_F^2 (`harness.losses.lora_loss`) and differentiates it with torch autograd
through the user's function.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.errors import HarnessError
from harness.instance import Instance
from harness.solvers.base import Result, Solver, gradient_names


class AttentionSolver(Solver):
    options: dict = {}

    def __init__(self, fn: Callable, name: str):
        self.fn, self.name = fn, name
        self.exact = bool(getattr(fn, "exact", False))
        self.cost = str(getattr(fn, "cost", "unknown"))
        self.description = (
            (getattr(fn, "__doc__", None) or "").strip().splitlines() or ["attention function"]
        )[0]

    def _solve(self, inst: Instance, dtype, device, **opts) -> Result:
        import torch

        from harness.losses import effective_weights

        t = dict(inst.as_torch(dtype=dtype, device=device))
        names = gradient_names(inst)
        leaves = [k[1:] for k in names]
        for k in leaves:
            t[k] = t[k].clone().requires_grad_(True)
        W = effective_weights(t, inst.alpha, inst.r)
        q, k, v = (t[f"X_{m}"] @ W[m] for m in ("q", "k", "v"))
        try:
            out = self.fn(q, k, v, scale=float(inst.beta))
        except HarnessError:
            raise
        except Exception as exc:
            raise HarnessError(f"attention {self.name!r} raised {type(exc).__name__}: {exc}") from None
        want = tuple(q.shape[:-1] + v.shape[-1:])
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise HarnessError(f"attention {self.name!r} returned {got}; expected a tensor of shape {want}")
        loss = ((out - t["Y"]) ** 2).sum() / (2 * out.shape[0])
        try:
            gs = torch.autograd.grad(loss, [t[k] for k in leaves])
        except RuntimeError as exc:
            raise HarnessError(
                f"attention {self.name!r} is not differentiable by torch autograd: {exc}"
            ) from None
        grads = {n: g.detach().cpu().double().numpy() for n, g in zip(names, gs)}
        return Result(grads, float(loss.detach().cpu()), self.name, info={"via": "attention"})


def from_attention(fn: Callable, *, name: str | None = None) -> Solver:
    if not callable(fn):
        raise HarnessError(f"attention {name or fn!r} is not callable")
    return AttentionSolver(fn, name or getattr(fn, "__name__", repr(fn)))


def resolve_solver(cell: dict) -> Solver:
    """The Solver a cell names: `get_solver(spec)`, or for kind "attention" the wrapped function."""
    from harness.solvers import get_solver

    if cell.get("kind") == "attention":
        from harness.solvers.registry import _import

        return from_attention(_import(cell["solver"]), name=cell["solver"])
    return get_solver(cell["solver"])
