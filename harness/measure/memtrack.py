"""Deterministic memory facts about a torch computation, independent of the allocator:
`LargestTensor` records the largest tensor (in elements) that any torch operation produced inside
its context. Used to assert "no L x L allocation" for streaming and low-rank solvers.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LargestTensor(TorchDispatchMode):
    """with LargestTensor() as m: ...; m.max_numel, m.max_op"""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0
        self.max_op = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.numel() > self.max_numel:
                self.max_numel, self.max_op = t.numel(), str(func)
        return out
