"""Precision: dtypes, unit roundoff, reduced-precision emulation and process-wide torch state.

Torch backend flags (TF32, cuDNN determinism) and the intra-op thread count are global to
the process (the count partly per OS thread, see ``DEFAULT_THREADS``), while a hosted
Streamlit server runs many sessions in threads. Every run goes through ``torch_state(...)``,
which holds one process-wide lock, applies the run's settings and restores exactly the
state it changed on exit, also when the run raised.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator

import torch

TORCH_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

# u = 2^-p, p = significand bits including the implicit one (round to nearest).
UNIT_ROUNDOFF = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "tf32": 2.0**-11,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}


def gamma(k: int, u: float) -> float:
    """Higham's gamma_k = k*u / (1 - k*u); infinite (no bound) once k*u >= 1."""
    ku = k * u
    return ku / (1.0 - ku) if ku < 1.0 else float("inf")


# The probabilistic bound holds for each output element with at least this probability.
PROBABILISTIC_CONFIDENCE = 1 - 1e-6


def gamma_probabilistic(k: int, u: float, confidence: float = PROBABILISTIC_CONFIDENCE
                        ) -> float:
    """Higham and Mary (2019), Theorem 3.1: with rounding errors modelled as independent
    and mean zero, a sum of k terms errs by at most
    gamma~_k(lam) = exp(lam sqrt(k) u + k u^2 / (1 - u)) - 1 (about lam sqrt(k) u) times
    the sum of the terms' magnitudes, with probability at least
    1 - 2k exp(-lam^2 (1 - u)^2 / 2); lam is chosen here so that is ``confidence``.
    Typical rounding grows like sqrt(k) u, the worst case like k u."""
    lam = math.sqrt(2 * math.log(2 * k / (1 - confidence))) / (1 - u)
    return math.expm1(lam * math.sqrt(k) * u + k * u * u / (1 - u))


# ---------------------------------------------------------------------------------------
# Emulation: round float32 operands to a narrower significand, keep float32 storage.

def round_to_tf32(x: torch.Tensor) -> torch.Tensor:
    """Round float32 values to TF32 (10 explicit mantissa bits), nearest, ties to even.

    The result is still float32, with the low 13 mantissa bits zero. Inf and NaN pass
    through untouched; a finite value above TF32's largest rounds to inf, as the hardware's
    round-to-nearest does.
    """
    if x.dtype != torch.float32:
        raise ValueError(f"round_to_tf32 takes float32, got {x.dtype}")
    # In int32, two arrays of x's size at a time (the int64 arithmetic this replaced held
    # about 40 bytes per element: a layer's weights or a wide input several times over).
    bits = x.contiguous().view(torch.int32)
    magnitude = bits & 0x7FFFFFFF
    keep = magnitude >= 0x7F800000  # inf or NaN: kept as they are
    magnitude.clamp_max_(0x7F7FFFFF)  # so that adding half an ulp cannot overflow int32
    rounded = (magnitude >> 13).bitwise_and_(1).add_(0x0FFF).add_(magnitude)
    del magnitude
    # Drop the 13 low bits; a carry into the exponent is the correct rounding (up to inf).
    rounded.bitwise_and_(~0x1FFF).bitwise_or_(bits & -(2**31))  # then the sign back
    if bool(keep.any()):
        rounded[keep] = bits[keep]
    return rounded.view(torch.float32).view_as(x)


def round_operand(x: torch.Tensor, emulation: str) -> torch.Tensor:
    """An operand as the emulated hardware would see it; float32 in, float32 out."""
    if emulation == "none":
        return x
    if emulation == "tf32":
        return round_to_tf32(x)
    if emulation == "bf16":
        return x.to(torch.bfloat16).to(torch.float32)
    if emulation == "fp16":
        return x.to(torch.float16).to(torch.float32)
    raise ValueError(f"emulation={emulation!r}: use none, tf32, bf16 or fp16")


EMULATED_UNIT_ROUNDOFF = {"tf32": 2.0**-11, "bf16": 2.0**-8, "fp16": 2.0**-11}


# ---------------------------------------------------------------------------------------
# Process-wide torch state.

class SharedExclusiveLock:
    """Many runs that leave torch's global state alone may proceed together (shared);
    a run that changes it waits until it is alone (exclusive), and no one starts meanwhile.

    Waiting writers block new readers, so a run that changes flags is not starved. Not
    reentrant: a thread holding it must not take it again.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()

    def is_free(self) -> bool:
        with self._cond:
            return not (self._writer or self._readers or self._writers_waiting)


STATE_LOCK = SharedExclusiveLock()

_TRISTATE_TO_PRECISION = {"on": "tf32", "off": "ieee"}


def _has_fp32_precision_api() -> bool:
    return hasattr(torch.backends.cudnn, "conv") and hasattr(
        torch.backends.cudnn.conv, "fp32_precision")


def read_backend_flags() -> dict[str, object]:
    """The flags in effect right now, as plain values (for the report's environment)."""
    flags: dict[str, object] = {
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "threads": torch.get_num_threads(),
    }
    if _has_fp32_precision_api():
        flags["cudnn_conv_fp32_precision"] = torch.backends.cudnn.conv.fp32_precision
        flags["cuda_matmul_fp32_precision"] = torch.backends.cuda.matmul.fp32_precision
    if _has_onednn_precision_api():
        flags["onednn_matmul_fp32_precision"] = torch.backends.mkldnn.matmul.fp32_precision
        flags["onednn_conv_fp32_precision"] = torch.backends.mkldnn.conv.fp32_precision
    return flags


# oneDNN (CPU) float32 precision: "bf16" really computes float32 matmuls/convolutions in
# bfloat16 on CPUs with AVX512-BF16 or AMX; "tf32" only where the CPU has TF32. "default"
# leaves torch's setting ("none": full float32).
CPU_PRECISIONS = ("default", "ieee", "bf16", "tf32")


def _has_onednn_precision_api() -> bool:
    mkldnn = torch.backends.mkldnn
    return hasattr(mkldnn, "matmul") and hasattr(mkldnn.matmul, "fp32_precision")


def _set_onednn(which: str, value: str) -> None:
    if value == "default":
        return
    if not _has_onednn_precision_api():
        raise ValueError(f"cpu_{which}_precision={value!r} needs torch's oneDNN fp32_precision "
                         f"switches (torch 2.9 or newer); this torch has none. Use "
                         f"cpu_{which}_precision=default, or emulation instead.")
    getattr(torch.backends.mkldnn, which).fp32_precision = value


@contextlib.contextmanager
def onednn_full_precision() -> Iterator[None]:
    """Full float32 oneDNN kernels inside, whatever the run set (restored after). Call it
    only from a run that holds STATE_LOCK exclusively, or where nothing was changed."""
    if not _has_onednn_precision_api():
        yield
        return
    mkldnn = torch.backends.mkldnn
    before = (mkldnn.matmul.fp32_precision, mkldnn.conv.fp32_precision)
    if all(p in ("none", "ieee") for p in before):
        yield
        return
    mkldnn.matmul.fp32_precision = mkldnn.conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        mkldnn.matmul.fp32_precision, mkldnn.conv.fp32_precision = before


# The intra-op thread count is two pieces of state in PyTorch's OpenMP build (checked on
# torch 2.13): each OS thread has its own count (OpenMP's per-thread ICV and MKL's local
# setting), and torch.set_num_threads also stores a process-wide value that every *new* OS
# thread adopts on its first parallel call. A hosted Streamlit server starts a new script
# thread per rerun, so a run that sets 1 thread and "restores" its own thread's stale count
# would hand that count to every later session. Hence: a run with threads=0 uses
# DEFAULT_THREADS (the process's count, captured once at import), set explicitly on its own
# thread if that thread differs; and a run that changes the count restores both pieces, its
# own thread's count and the value new threads adopt, exactly as they were.
DEFAULT_THREADS = torch.get_num_threads()


def threads_in_effect(threads: int) -> int:
    """The intra-op thread count a run with this ``threads`` setting computes with."""
    return threads if threads else DEFAULT_THREADS


def _run_in_fresh_thread(work):
    """work() on a new OS thread (which adopts the process-wide thread count); its result."""
    out: list = []
    helper = threading.Thread(target=lambda: out.append(work()), name="explorer-threads")
    helper.start()
    helper.join()
    return out[0]


def threads_for_new_threads() -> int:
    """The count a new OS thread adopts on its first torch call (process-wide value)."""
    return _run_in_fresh_thread(torch.get_num_threads)


def _set_threads_for_new_threads(count: int) -> None:
    # torch.set_num_threads on a throwaway thread writes the process-wide value only: the
    # caller's own thread keeps its count.
    _run_in_fresh_thread(lambda: torch.set_num_threads(count))


def _snapshot() -> dict[str, object]:
    snap: dict[str, object] = {
        "deterministic": torch.backends.cudnn.deterministic,
        "benchmark": torch.backends.cudnn.benchmark,
    }
    if _has_fp32_precision_api():
        snap["conv"] = torch.backends.cudnn.conv.fp32_precision
        snap["matmul"] = torch.backends.cuda.matmul.fp32_precision
    else:
        snap["conv_allow"] = torch.backends.cudnn.allow_tf32
        snap["matmul_allow"] = torch.backends.cuda.matmul.allow_tf32
    if _has_onednn_precision_api():
        snap["onednn"] = (torch.backends.mkldnn.matmul.fp32_precision,
                          torch.backends.mkldnn.conv.fp32_precision)
    return snap


def _restore(snap: dict[str, object]) -> None:
    torch.backends.cudnn.deterministic = bool(snap["deterministic"])
    torch.backends.cudnn.benchmark = bool(snap["benchmark"])
    if "conv" in snap:
        torch.backends.cudnn.conv.fp32_precision = snap["conv"]
        torch.backends.cuda.matmul.fp32_precision = snap["matmul"]
    else:
        torch.backends.cudnn.allow_tf32 = bool(snap["conv_allow"])
        torch.backends.cuda.matmul.allow_tf32 = bool(snap["matmul_allow"])
    if "onednn" in snap:
        (torch.backends.mkldnn.matmul.fp32_precision,
         torch.backends.mkldnn.conv.fp32_precision) = snap["onednn"]


@contextlib.contextmanager
def _thread_count(wanted: int, switching: bool = False) -> Iterator[None]:
    """This OS thread computes with ``wanted`` threads inside; both pieces restored after.

    ``switching``: the block will also change the count itself (``switch_threads``), so the
    state is saved and restored even when it starts out right. Call with the state lock
    held exclusively: the process-wide value changes meanwhile.
    """
    own_before = torch.get_num_threads()
    if own_before == wanted and not switching:
        yield
        return
    new_threads_before = threads_for_new_threads()
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(own_before)
        if new_threads_before != own_before:
            _set_threads_for_new_threads(new_threads_before)


# The thread counts a torch_state block on this OS thread may switch between.
_SWITCHABLE = threading.local()


@contextlib.contextmanager
def switch_threads(setting: int) -> Iterator[int]:
    """Inside ``torch_state(side_threads=...)``: compute with this side's thread count.

    ``setting`` is a side's resolved setting (0 = the process default). Yields the count
    in effect and puts the block's own count back after. Only counts the enclosing
    torch_state announced are allowed: it holds the lock exclusively for exactly those.
    """
    wanted = threads_in_effect(setting)
    allowed = getattr(_SWITCHABLE, "counts", frozenset())
    current = torch.get_num_threads()
    if wanted == current:
        yield current
        return
    if wanted not in allowed:
        raise AssertionError(f"switch_threads({setting}) outside a torch_state that announced "
                             f"it (announced: {sorted(allowed)})")
    torch.set_num_threads(wanted)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(current)


def _set_tf32(which: str, state: str) -> None:
    if state == "default":
        return
    if _has_fp32_precision_api():
        target = (torch.backends.cudnn.conv if which == "conv" else torch.backends.cuda.matmul)
        target.fp32_precision = _TRISTATE_TO_PRECISION[state]
    elif which == "conv":
        torch.backends.cudnn.allow_tf32 = state == "on"
    else:
        torch.backends.cuda.matmul.allow_tf32 = state == "on"


@contextlib.contextmanager
def torch_state(*, threads: int = 0, conv_tf32: str = "default", matmul_tf32: str = "default",
                cudnn_deterministic: bool | None = None, cudnn_benchmark: bool | None = None,
                cpu_matmul_precision: str = "default", cpu_conv_precision: str = "default",
                side_threads: tuple[int, ...] = ()) -> Iterator[dict[str, object]]:
    """Hold the process-wide lock, apply these settings, restore the old ones on exit.

    ``threads=0`` means DEFAULT_THREADS, never "whatever this thread happens to have". A
    run that changes nothing holds the lock shared (other such runs go on beside it); a
    run that changes anything, including a thread whose count differs from the one the
    run needs, holds it exclusively. Either way no run ever sees another's settings.
    ``side_threads`` are the other thread settings the block switches to with
    ``switch_threads(...)`` (each side's own count): any that differs makes the run
    exclusive too. Yields the flags actually in effect inside the block.
    """
    wanted = threads_in_effect(threads)
    counts = frozenset({wanted, *(threads_in_effect(t) for t in side_threads)})
    switching = len(counts) > 1
    flag_changes = conv_tf32 != "default" or matmul_tf32 != "default" \
        or cudnn_deterministic is not None or cudnn_benchmark is not None \
        or cpu_matmul_precision != "default" or cpu_conv_precision != "default" or switching
    if not flag_changes:
        with STATE_LOCK.shared():
            # Read under the shared lock: no run is changing the process-wide count now, so
            # a thread's first read adopts the process's own value, not a run's.
            if torch.get_num_threads() == wanted:
                yield read_backend_flags()
                return
    with STATE_LOCK.exclusive():
        snap = _snapshot()
        try:
            with _thread_count(wanted, switching):
                _set_tf32("conv", conv_tf32)
                _set_tf32("matmul", matmul_tf32)
                _set_onednn("matmul", cpu_matmul_precision)
                _set_onednn("conv", cpu_conv_precision)
                if cudnn_deterministic is not None:
                    torch.backends.cudnn.deterministic = cudnn_deterministic
                if cudnn_benchmark is not None:
                    torch.backends.cudnn.benchmark = cudnn_benchmark
                _SWITCHABLE.counts = counts
                try:
                    yield read_backend_flags()
                finally:
                    _SWITCHABLE.counts = frozenset()
        finally:
            _restore(snap)
