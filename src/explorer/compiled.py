"""torch.compile for the ``linear_compiled`` implementation: compiled once, kept, shared.

Each affine layer is one compiled function ``(x, W, b) -> (W x + b, activation(...))``
(the last layer returns only its output): inductor generates its own code for the bias
and the activation (fused, vectorised) and calls a GEMM for the product, which is what
"eager vs torch.compile" differences come from. Weights are arguments, not constants, so
one compiled function serves every weight value of that shape.

Compiling costs seconds (tens on a cold start), so compiled functions live in a
process-wide LRU keyed by everything that changes the generated code: the call's input
shape, fan-out, dtype, device, activation, whether it is the last layer, the thread
count (inductor writes it into its OpenMP loops) and oneDNN's float32 matmul precision. A
rerun pays nothing. Compiling runs under one lock, so a shared server compiles one thing at
a time.

Dynamo keeps its compiled variants per Python code object and, past a limit, quietly
falls back to eager. Each cache entry therefore gets its own copy of the layer function's
code object that only ever sees one input signature, and every call runs in
inference mode (dynamo guards on it), so no entry ever recompiles.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

BACKEND = "inductor"
MAX_COMPILED = 64  # compiled layer functions kept (a forum network needs 4 per rows shape)
DISABLE_ENV = "EXPLORER_DISABLE_COMPILE"

# A layer's compiled code depends on these, and only these.
CompileKey = tuple[tuple[int, ...], int, torch.dtype, str, str, bool, int, str]


def _onednn_matmul_precision() -> str:
    """oneDNN's float32 matmul precision now (inductor's CPU GEMM lowering may read it)."""
    matmul = getattr(torch.backends.mkldnn, "matmul", None)
    return str(getattr(matmul, "fp32_precision", "n/a"))


def unavailable_reason(device: torch.device) -> str | None:
    """Why torch.compile cannot run here, or None when it can."""
    if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
        return f"this server turned torch.compile off ({DISABLE_ENV} is set)"
    try:
        import torch._dynamo  # noqa: F401  (import fails where dynamo is not supported)

        if not torch._dynamo.is_dynamo_supported():
            return "torch.compile does not support this Python version"
    except Exception as err:  # any import or support problem means: not available
        return f"torch.compile cannot start ({type(err).__name__}: {err})"
    if device.type == "cpu":
        compiler = os.environ.get("CXX", "g++")
        if shutil.which(compiler) is None and shutil.which("c++") is None:
            return (f"inductor needs a C++ compiler on the CPU and none was found "
                    f"({compiler!r} or 'c++' on PATH)")
        return None
    if device.type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return "inductor needs Triton on CUDA, and it cannot be checked here"
        return None if has_triton() else "inductor needs Triton on CUDA; it is not installed"
    return f"this project compiles only on cpu and cuda, not {device.type}"


def check_available(device: torch.device) -> None:
    """Raise ValueError naming what to do when linear_compiled cannot run on device."""
    reason = unavailable_reason(device)
    if reason is not None:
        where = (f"or ask the server's admin to unset {DISABLE_ENV}"
                 if DISABLE_ENV in reason else "or run where a C++ compiler is installed")
        raise ValueError(f"implementation 'linear_compiled' needs torch.compile, which is not "
                         f"available: {reason}. Choose impl 'linear' (the same network, "
                         f"eager), {where}.")


def _layer(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, activation, last: bool):
    pre = torch.nn.functional.linear(x, weight, bias)
    if last:
        return pre, None
    return pre, activation(pre)


def _own_copy(function: Callable) -> Callable:
    """The same function with a code object of its own (dynamo's cache lives on it)."""
    return types.FunctionType(function.__code__.replace(), function.__globals__,
                              function.__name__, function.__defaults__, function.__closure__)


@dataclass
class _Entry:
    function: Callable
    ready: bool = False


class CompiledLayers:
    """A bounded, thread-safe LRU of compiled layer functions."""

    def __init__(self, capacity: int = MAX_COMPILED):
        self.capacity = capacity
        self._entries: OrderedDict[CompileKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()  # guards _entries
        self._compile_lock = threading.Lock()  # one compilation at a time, process-wide

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _ready(self, key: CompileKey) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.ready:
                self._entries.move_to_end(key)
                return entry
            return None

    def call(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
             activation_name: str, activation: torch.nn.Module, last: bool
             ) -> tuple[torch.Tensor, torch.Tensor | None, float]:
        """(pre, post or None, seconds spent compiling in this call: 0 when cached)."""
        x = x.contiguous()  # one memory layout per shape: the compiled code's guards hold
        key: CompileKey = (tuple(x.shape), int(weight.shape[0]), x.dtype, str(x.device),
                           activation_name, last, torch.get_num_threads(),
                           _onednn_matmul_precision())
        with torch.inference_mode():
            entry = self._ready(key)
            if entry is not None:
                pre, post = entry.function(x, weight, bias)
                return pre, post, 0.0
            with self._compile_lock:
                entry = self._ready(key)  # compiled by another thread meanwhile?
                if entry is not None:
                    pre, post = entry.function(x, weight, bias)
                    return pre, post, 0.0
                return self._compile_and_call(key, x, weight, bias, activation, last)

    def _compile_and_call(self, key, x, weight, bias, activation, last):
        own = _own_copy(_layer)

        def layer(x, weight, bias):
            return own(x, weight, bias, activation, last)

        function = torch.compile(_own_copy(layer), backend=BACKEND, dynamic=False,
                                 fullgraph=True)
        started = time.perf_counter()
        try:
            pre, post = function(x, weight, bias)  # the first call compiles
        except Exception as err:  # inductor's failures have many types; say what happened
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ValueError(f"torch.compile failed for a layer of shape {tuple(x.shape)} -> "
                             f"{int(weight.shape[0])} ({type(err).__name__}: "
                             f"{first_line[:300]}). Choose impl 'linear' (eager) instead."
                             ) from err
        seconds = time.perf_counter() - started
        with self._lock:
            self._entries[key] = _Entry(function, ready=True)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return pre, post, seconds


CACHE = CompiledLayers()
