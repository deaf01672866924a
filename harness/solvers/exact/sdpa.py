"""`sdpa`: the LoRA loss (docs/theory.md §3.2) through torch's fused attention,
`torch.nn.functional.scaled_dot_product_attention(Q, K, V, scale=beta)`, differentiated by autograd.

This is what a user of torch would write; the solver exists so that the harness can referee torch's
own kernels and time them against `streaming`. Backends (option `backend`, chosen with
`torch.nn.attention.sdpa_kernel`):

    auto       torch's choice (CPU: its flash kernel; CUDA: flash / cuDNN / efficient / math by dtype)
    flash      FlashAttention-2: CPU (float32, float64) and CUDA (float16, bfloat16)
    cudnn      cuDNN attention, CUDA only (float16, bfloat16)
    efficient  memory-efficient attention (xFormers), CUDA only (float16, bfloat16, float32)
    math       the unfused reference in ATen: materialises the N x Lq x Lk scores (any dtype, device)

Before anything is allocated the bytes the backend will need are estimated (`memory_estimate`) and a
size that does not fit in the available memory (CPU: MemAvailable; CUDA: free device memory) is
refused with one line naming the estimate and the limit. Causal instances pass `is_causal=True`
(torch's top-left mask, the harness's rule: `harness.instance.attention_mask`).
"""

from __future__ import annotations

import numpy as np
import torch

from harness.errors import HarnessError
from harness.instance import Instance
from harness.lora import effective_weights
from harness.solvers._common import to_numpy
from harness.solvers.base import Result, Solver, input_bytes
from harness.solvers.options import Option

BACKENDS = ("auto", "flash", "cudnn", "efficient", "math")
_LOW = (torch.float16, torch.bfloat16)
# dtypes each backend accepts, per device type (torch 2.13; a backend missing here is refused)
SUPPORTED = {
    "cpu": {"flash": (torch.float32, torch.float64, *_LOW), "math": None},
    "cuda": {"flash": _LOW, "cudnn": _LOW, "efficient": (*_LOW, torch.float32), "math": None},
}
# live N x Lq x Lk buffers of the math backend through forward + backward (scores, probabilities,
# their gradients; measured peak at L = 4096: 3.1 of them in float32 and float64 on CPU)
MATH_LL_BUFFERS = 4
FIXED_BYTES = 32 << 20  # allocator, autograd graph and thread-pool overhead of one call (measured < 10 MiB)


def _sdpa_backend(name: str):
    from torch.nn.attention import SDPBackend

    return {
        "flash": SDPBackend.FLASH_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }[name]


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """The backend that will run ('auto' resolved as torch resolves it), or a one-line HarnessError."""
    if backend not in BACKENDS:
        raise HarnessError(f"sdpa option backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    table = SUPPORTED.get(device.type)
    if table is None:
        raise HarnessError(f"sdpa runs on cpu or cuda, not {device.type!r}")
    if backend == "auto":
        order = ("flash", "math") if device.type == "cpu" else ("flash", "cudnn", "efficient", "math")
        return next(b for b in order if table[b] is None or dtype in table[b])
    if backend not in table:
        raise HarnessError(
            f"sdpa backend {backend!r} is not available on {device.type} (available: {', '.join(table)})"
        )
    if table[backend] is not None and dtype not in table[backend]:
        names = ", ".join(str(t).replace("torch.", "") for t in table[backend])
        raise HarnessError(
            f"sdpa backend {backend!r} on {device.type} does not take "
            f"{str(dtype).replace('torch.', '')} (it takes {names})"
        )
    return backend


def memory_estimate(N: int, Lq: int, Lk: int, d: int, dtype: torch.dtype, backend: str) -> int:
    """Bytes the forward + backward will hold at its peak: the inputs, Q, K, V, the output, their
    gradients (about 16 N L d entries), FIXED_BYTES, plus MATH_LL_BUFFERS score-sized buffers for
    `math`."""
    item = torch.empty((), dtype=dtype).element_size()
    linear = 16 * N * max(Lq, Lk) * d * item + 4 * N * Lq * 4 + FIXED_BYTES  # + row lse (float32)
    return linear + (MATH_LL_BUFFERS * N * Lq * Lk * item if backend == "math" else 0)


def available_bytes(device: torch.device) -> int | None:
    """Memory that can still be allocated: CUDA free memory, or the kernel's MemAvailable."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    from harness.memguard import available_bytes as host_available

    return host_available()


def sdpa_loss(t: dict, alpha: float, beta: float, r: int, causal: bool = False) -> torch.Tensor:
    """1/(2N) sum_i ||sdpa(Q_i, K_i, V_i, scale=beta) - Y_i||_F^2, Q = X_q W_q etc. (docs/theory.md §3.2)."""
    import torch.nn.functional as F

    W = effective_weights(t, alpha, r)
    Q = (t["X_q"] @ W["q"]).unsqueeze(1)  # (N, 1 head, Lq, d)
    K = (t["X_k"] @ W["k"]).unsqueeze(1)
    V = (t["X_v"] @ W["v"]).unsqueeze(1)
    out = F.scaled_dot_product_attention(Q, K, V, scale=float(beta), is_causal=causal).squeeze(1)
    return ((out - t["Y"]) ** 2).sum() / (2 * out.shape[0])


def sdpa_gradients(t: dict, alpha: float, beta: float, r: int, adapted, backend: str, causal: bool = False):
    """Loss and adapter gradients {dA_m, dB_m} (torch tensors) with the given resolved backend."""
    from torch.nn.attention import sdpa_kernel

    leaves = {}
    t = dict(t)
    for m in adapted:
        for p in ("A", "B"):
            t[f"{p}_{m}"] = leaves[f"d{p}_{m}"] = t[f"{p}_{m}"].detach().clone().requires_grad_(True)
    with sdpa_kernel([_sdpa_backend(backend)]):
        loss = sdpa_loss(t, alpha, beta, r, causal)
        grads = torch.autograd.grad(loss, list(leaves.values())) if leaves else ()
    return loss.detach(), dict(zip(leaves, grads))


class SdpaSolver(Solver):
    name = "sdpa"
    exact = True
    cost = "O(N L^2 d) time; O(N L d) memory (flash, cudnn, efficient), O(N L^2) (math)"
    description = (
        "torch scaled_dot_product_attention + autograd (backends: auto, flash, cudnn, efficient, math)"
    )
    options = {
        "backend": Option(str, "auto", choices=BACKENDS, help="cudnn and efficient: CUDA only"),
    }

    def memory_estimate(self, inst: Instance, itemsize: int, backend="auto") -> int:
        """The module's `memory_estimate` for the backend the CPU would run (the memory guard)."""
        dtype = torch.float64 if itemsize == 8 else torch.float32
        chosen = resolve_backend(backend, torch.device("cpu"), dtype)  # a CUDA-only backend: one line
        return memory_estimate(inst.N, inst.Lq, inst.Lk, inst.d, dtype, chosen) + input_bytes(inst, itemsize)

    def _solve(self, inst: Instance, dtype, device, backend="auto") -> Result:
        chosen = resolve_backend(backend, device, dtype)
        need = memory_estimate(inst.N, inst.Lq, inst.Lk, inst.d, dtype, chosen)
        have = available_bytes(device)
        if have is not None and need > have:
            raise HarnessError(
                f"sdpa ({chosen}) needs about {need / 2**30:.1f} GiB for N={inst.N}, "
                f"Lq={inst.Lq}, Lk={inst.Lk}, d={inst.d}; {have / 2**30:.1f} GiB available "
                f"on {device.type} (use backend=flash or the streaming solver)"
            )
        t = inst.as_torch(dtype=dtype, device=device)
        try:
            loss, grads = sdpa_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, chosen, inst.causal)
        except RuntimeError as exc:  # a backend that refuses these shapes at run time
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HarnessError(f"sdpa backend {chosen!r} failed: {msg}") from None
        out = to_numpy(grads)
        from harness.solvers.exact.autograd import _ops

        return Result(
            out, float(loss), self.name, ops=_ops(inst), info={"backend": chosen, "memory_estimate": need}
        )

    def forward(self, inst: Instance, *, dtype=None, device=None, backend="auto") -> np.ndarray:
        import torch.nn.functional as F
        from torch.nn.attention import sdpa_kernel

        from harness.solvers.base import resolve_device, resolve_dtype

        dtype, device = resolve_dtype(dtype), resolve_device(device)
        chosen = resolve_backend(backend, device, dtype)
        t = inst.as_torch(dtype=dtype, device=device)
        W = effective_weights(t, inst.alpha, inst.r)
        with torch.no_grad(), sdpa_kernel([_sdpa_backend(chosen)]):
            Q, K, V = ((t[f"X_{m}"] @ W[m]).unsqueeze(1) for m in "qkv")
            out = F.scaled_dot_product_attention(Q, K, V, scale=float(inst.beta), is_causal=inst.causal)
        return out.squeeze(1).cpu().double().numpy()
