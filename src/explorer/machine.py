"""What this machine's kernels actually use: the facts that decide the summation order.

Which kernel a CPU runs (and so the order its sums are added in) depends on the CPU's
instruction set and on caps set from outside (``ONEDNN_MAX_CPU_ISA``,
``MKL_ENABLE_INSTRUCTIONS``, ``ATEN_CPU_CAPABILITY``) and on the thread count. Two machines
with the same torch and the same seed can therefore print different differences, and
sometimes a different verdict. The report records these facts so a number can be traced
to where it came from.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading

import torch

# Environment variables that cap the instruction set of torch's CPU kernels.
ISA_ENV_VARS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
                "ATEN_CPU_CAPABILITY")

_probe_lock = threading.Lock()


def _tiny_onednn_op() -> None:
    # A reorder into oneDNN's layout always runs a oneDNN primitive (a small convolution
    # may not: with one thread torch picks its own kernel for it).
    with torch.inference_mode():
        torch.ones(2, 8, 3, 1).to_mkldnn().to_dense()


@functools.cache
def onednn_isa() -> str:
    """The instruction set oneDNN dispatches to in this process, as oneDNN names it
    (e.g. "Intel AVX-512 with Intel DL Boost and bfloat16 support"); "unknown" if it
    cannot be read.

    oneDNN prints it only in verbose mode, to the C-level stdout, so the probe turns
    verbose on for one tiny oneDNN operation with file descriptor 1 pointed at a temporary
    file. It runs once per process.
    """
    if not torch.backends.mkldnn.is_available():
        return "oneDNN not available"
    with _probe_lock:
        for stream in (sys.stdout, sys.__stdout__):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        fd = 1  # oneDNN writes to the C library's stdout, whatever sys.stdout is now
        saved = os.dup(fd)
        try:
            with tempfile.TemporaryFile() as sink:
                os.dup2(sink.fileno(), fd)
                try:
                    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                        _tiny_onednn_op()
                finally:
                    os.dup2(saved, fd)
                sink.seek(0)
                text = sink.read().decode(errors="replace")
        finally:
            os.close(saved)
    for line in text.splitlines():
        if ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    return "unknown"


def isa_facts() -> dict[str, object]:
    """The CPU instruction set in use and the caps that chose it, for the environment."""
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # ATen's vector kernels
        "onednn_isa": onednn_isa(),  # oneDNN's convolutions and matmuls
        "isa_caps": {name: os.environ[name] for name in ISA_ENV_VARS if name in os.environ},
    }


# ---------------------------------------------------------------------------------------
# Does this CPU really compute in bfloat16 when oneDNN is asked to?


def _probe_error_ratio(op: str) -> float:
    """Max error of one float32 op under the current oneDNN setting, as a share of the
    worst-case float32 rounding bound (<= 1: computed in float32; >> 1: reduced)."""
    from explorer.precision import UNIT_ROUNDOFF, gamma

    generator = torch.Generator().manual_seed(0)
    fan_in = 256
    x = torch.randn(8, fan_in, 16, generator=generator)  # (batch, channels, positions)
    w = torch.randn(32, fan_in, generator=generator)
    with torch.inference_mode():
        if op == "matmul":
            rows = x.permute(0, 2, 1).reshape(-1, fan_in)
            out = torch.nn.functional.linear(rows, w)
        else:  # a 1x1 convolution with batch >= 2 takes oneDNN's convolution path
            rows = x.permute(0, 2, 1).reshape(-1, fan_in)
            out = torch.nn.functional.conv1d(x, w.unsqueeze(-1)).permute(0, 2, 1).reshape(
                -1, w.shape[0])
    exact = rows.double() @ w.double().T
    bound = gamma(fan_in, UNIT_ROUNDOFF["float32"]) * (rows.double().abs() @ w.double().abs().T)
    return float(((out.double() - exact).abs() / bound).max())


@functools.cache
def cpu_bf16_honoured() -> dict[str, bool]:
    """{"matmul": ..., "conv": ...}: whether oneDNN's fp32_precision = "bf16" really
    computes in bfloat16 here (AVX512-BF16 or AMX), found by running one small matmul and
    one 1x1 convolution with it set and checking whether the float32 bound breaks. Runs
    once per process, holding the state lock exclusively (it changes global switches)."""
    from explorer.precision import STATE_LOCK, _has_onednn_precision_api

    if not (_has_onednn_precision_api() and torch.backends.mkldnn.is_available()):
        return {"matmul": False, "conv": False}
    mkldnn = torch.backends.mkldnn
    out = {}
    with STATE_LOCK.exclusive():
        before = (mkldnn.matmul.fp32_precision, mkldnn.conv.fp32_precision)
        try:
            for op in ("matmul", "conv"):
                getattr(mkldnn, op).fp32_precision = "bf16"
                out[op] = _probe_error_ratio(op) > 1
                getattr(mkldnn, op).fp32_precision = before[0 if op == "matmul" else 1]
        finally:
            mkldnn.matmul.fp32_precision, mkldnn.conv.fp32_precision = before
    return out
