"""Which devices this machine has, and clear errors for the ones it does not."""

from __future__ import annotations

import re

import torch

_DEVICE_PATTERN = re.compile(r"^(cpu|mps|cuda)(?::(\d{1,2}))?$")


def cuda_absent_reason() -> str | None:
    """None when CUDA is usable; otherwise why not, in words."""
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support"
    if not torch.cuda.is_available():
        return "this torch build has CUDA, but no CUDA GPU or driver was found"
    return None


def mps_absent_reason() -> str | None:
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_built():
        return "this torch build has no MPS (Apple GPU) support"
    if not mps.is_available():
        return "MPS is built in, but this machine has no usable Apple GPU"
    return None


def available_devices() -> list[str]:
    """Devices a run can use here, CPU first: cpu, cuda:0, cuda:1, ..., mps."""
    devices = ["cpu"]
    if cuda_absent_reason() is None:
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if mps_absent_reason() is None:
        devices.append("mps")
    return devices


def unavailable_devices() -> dict[str, str]:
    """Device families that are not available, each with the reason (for the UI)."""
    reasons = {"cuda": cuda_absent_reason(), "mps": mps_absent_reason()}
    return {name: why for name, why in reasons.items() if why}


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'mps' to a torch.device, or a ValueError saying why not."""
    match = _DEVICE_PATTERN.match(name.strip().lower()) if isinstance(name, str) else None
    available = ", ".join(available_devices())
    if match is None:
        raise ValueError(f"device={name!r} is not a device name: use cpu, cuda, cuda:N or mps. "
                         f"Available here: {available}.")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        if index not in (None, "0"):
            raise ValueError(f"device={name!r}: there is one CPU device; use cpu.")
        return torch.device("cpu")
    if kind == "cuda":
        reason = cuda_absent_reason()
        if reason:
            raise ValueError(f"device={name!r} is not available: {reason}. "
                             f"Available here: {available}. Use device=cpu; reduced "
                             f"precision can still be emulated (emulate_b=tf32).")
        i = int(index or 0)
        if i >= torch.cuda.device_count():
            raise ValueError(f"device={name!r} is not available: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s). Available here: "
                             f"{available}.")
        return torch.device("cuda", i)
    reason = mps_absent_reason()
    if reason:
        raise ValueError(f"device={name!r} is not available: {reason}. "
                         f"Available here: {available}. Use device=cpu.")
    return torch.device("mps")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    import platform

    return platform.processor() or platform.machine() or "CPU"
