"""The calling-convention preflight: the solver is called once on a tiny instance before any check
runs, so a callable with the wrong signature, return type, keys or shapes is a usage error (one line,
exit 2, no counterexample written) rather than five failing checks with unrelated counterexamples."""

from __future__ import annotations

from harness.errors import ContractError, HarnessError


def contract_instance():
    """Self-attention (Lq = Lk), r < d so a transposed adapter gradient shows in its shape."""
    from harness import families

    return families.bounded(L=3, d=2, r=1, adapt=("q", "v"), seed=0)


def check_contract(solver, dtype: str = "float64", device: str = "cpu", forward: bool = False) -> None:
    """Raise ContractError (a HarnessError) when the solver breaks the calling convention; anything
    else it raises is left to the checks, which report it with a shrunk counterexample."""
    inst = contract_instance()
    try:
        if forward:
            solver.forward(inst, dtype=dtype, device=device)
        else:
            solver.solve(inst, dtype=dtype, device=device)
    except ContractError:
        raise
    except HarnessError as exc:
        if forward and "does not compute the attention forward pass" in str(exc):
            raise HarnessError(
                f"--forward-only needs an attention function (--attention MODULE:FN) or a "
                f"solver with a forward pass; {solver.name!r} has none"
            ) from None
