"""The naive references beside the exact solvers.

`naive_p` forms p row by row from the (diag - rank-one) definition of docs/theory.md §3.1, the
obviously-correct twin of `closed_form.p_matrix`; `printed_q` shows the published, uncorrected
orientation q = C3 c^T used row-wise (docs/theory.md §7.1), kept so the suite can show that it is wrong. The
reference for the whole gradient is `autograd` (torch autograd of `harness.losses.lora_loss`).
"""

from __future__ import annotations

import torch


def naive_p(f: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Reference: p_j = (diag(f_j) - f_j f_j^T) q_j, one row at a time (Hu et al. (arXiv:2406.03136) Lemma
    3.2; docs/theory.md §3.1)."""
    rows = [(torch.diag(f[j]) - torch.outer(f[j], f[j])) @ q[j] for j in range(f.shape[0])]
    return torch.stack(rows)


def printed_q(c: torch.Tensor, C3: torch.Tensor) -> torch.Tensor:
    """The published q(W) := C3 c^T read row-wise (LoRA Lemma 3.2 as printed; WRONG, docs/theory.md §7.1).
    Only square when Lq == Lk; kept so the suite can show that it gives a wrong gradient."""
    return C3 @ c.transpose(-1, -2)
