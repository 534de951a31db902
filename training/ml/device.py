"""Where models run: the GPU when there is one (bf16 where supported, else fp16), else the CPU (training
in bf16 mixed precision where the CPU computes bf16 natively: AMX or AVX512-BF16)."""

from __future__ import annotations

import torch


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX or AVX512-BF16)."""
    checks = [getattr(torch.cpu, name, None)
              for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(check() for check in checks if check is not None)


def autocast_dtype(device: torch.device, *, cpu_bf16: bool = False) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16 on CUDA. On CPU full precision, unless `cpu_bf16` (the
    training steps ask for it) and the CPU has native bf16: there bf16 autocast makes a MiniLM step about
    1.6x faster (bench/train_throughput.py); the weights and the optimizer stay in fp32."""
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16 and cpu_has_native_bf16() else None
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def adamw(params, *, device: torch.device, **kwargs) -> torch.optim.AdamW:
    """AdamW, fused into one kernel where torch has it for the device (CPU and CUDA): the same update,
    computed faster than the per-tensor loop (as the Trainer's default `adamw_torch_fused`)."""
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(params, **kwargs)


def describe_device(device: torch.device) -> str:
    """A short human description: the GPU's name and memory, or "cpu"."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda: {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    return device.type
