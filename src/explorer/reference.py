"""The referee: the same network evaluated in higher precision than the compute dtype.

For float32/float16/bfloat16 compute the referee runs in float64 on the CPU, fed the
*same* parameters and input as the implementations (already rounded to the compute dtype,
then upcast exactly), so it judges the arithmetic, not the storage of the parameters.

For float64 compute a float64 referee would be no better than the players. Where numpy's
longdouble is wider than float64 (x86: 64-bit significand) the referee runs in it; its
errors are ~2^11 times smaller than float64's. Otherwise, or for activations numpy cannot
evaluate in longdouble (GELU needs erf), or for runs too big for numpy's non-BLAS
longdouble matmul, the referee says so and the report carries no reference errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.models import ACTIVATION_MODULES, Parameters

# numpy's longdouble matmul runs plain loops (~100 MFLOP/s): keep a referee run short.
MAX_LONGDOUBLE_MACS = 50_000_000

_LONGDOUBLE_BITS = np.finfo(np.longdouble).nmant + 1


def _longdouble_activation(name: str):
    one = np.longdouble(1)
    table = {
        "identity": lambda x: x,
        "relu": lambda x: np.maximum(x, 0),
        "leaky_relu": lambda x: np.where(x > 0, x, x * np.longdouble("0.01")),
        "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        "sigmoid": lambda x: one / (one + np.exp(-x)),
        "tanh": np.tanh,
        "silu": lambda x: x / (one + np.exp(-x)),
        # torch.nn.Softplus(beta=1, threshold=20): linear above the threshold.
        "softplus": lambda x: np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))),
    }
    return table.get(name)


@dataclass(frozen=True)
class RefereeInfo:
    available: bool
    precision: str  # "float64", "longdouble (64-bit significand)", or "none"
    note: str


class Referee:
    """Layer-by-layer higher-precision evaluation; values as float64 torch tensors.

    ``layer`` and ``activate`` take and return the referee's own arrays (float64 tensors,
    or numpy longdouble arrays); ``as_float64`` and ``error_of`` turn them into numbers.
    """

    def __init__(self, params: Parameters, activation: str, compute_dtype: torch.dtype,
                 rows: int):
        self.params = [(w.to(compute_dtype).to(torch.float64), b.to(compute_dtype)
                        .to(torch.float64)) for w, b in params]
        self.activation_name = activation
        self.longdouble = False
        if compute_dtype != torch.float64:
            self.info = RefereeInfo(True, "float64", "float64 on the CPU")
            self.activation = ACTIVATION_MODULES[activation]()
            return
        macs = rows * sum(w.numel() for w, _ in params)
        if _LONGDOUBLE_BITS <= 53:
            self.info = RefereeInfo(False, "none", "no referee at float64: numpy's longdouble "
                                    "is no wider than float64 on this platform")
        elif _longdouble_activation(activation) is None:
            self.info = RefereeInfo(False, "none", f"no referee at float64 for {activation}: "
                                    "numpy has no extended-precision erf")
        elif macs > MAX_LONGDOUBLE_MACS:
            self.info = RefereeInfo(False, "none", f"no referee at float64 for {macs:.2g} "
                                    f"multiply-adds (limit {MAX_LONGDOUBLE_MACS:.0e}): the "
                                    "extended-precision referee is slow; use fewer rows")
        else:
            self.longdouble = True
            self.info = RefereeInfo(True, f"longdouble ({_LONGDOUBLE_BITS}-bit significand)",
                                    "numpy longdouble on the CPU")
            self.ld_params = [(w.numpy().astype(np.longdouble), b.numpy().astype(np.longdouble))
                              for w, b in self.params]
            self.ld_activation = _longdouble_activation(activation)

    @property
    def available(self) -> bool:
        return self.info.available

    def start(self, x_bsc: torch.Tensor, compute_dtype: torch.dtype):
        x64 = x_bsc.to(compute_dtype).to(device="cpu", dtype=torch.float64)
        return x64.numpy().astype(np.longdouble) if self.longdouble else x64

    def layer(self, index: int, h):
        if self.longdouble:
            w, b = self.ld_params[index]
            return h @ w.T + b
        w, b = self.params[index]
        return (h @ w.T).add_(b)  # in place: one array of the layer's size, not two

    def exact_layer(self, index: int, x_bsc: torch.Tensor):
        """W x + b for a side's *own* input x (compute dtype, any device), in the referee's
        precision: the exact result that side's layer should have rounded."""
        return self.layer(index, self.start(x_bsc, x_bsc.dtype))

    def first_rows(self, r, rows: int, width: int):
        """The first ``rows`` rows of a referee array seen as (rows, width)."""
        return r.reshape(-1, width)[:rows]

    def abs_error(self, values: torch.Tensor, r) -> torch.Tensor:
        """|values - r| as float64, the difference taken in the referee's precision;
        0 where they are equal (also equal infinities), NaN where either is NaN."""
        from explorer.metrics import abs_diff

        if not self.longdouble:
            return abs_diff(values, r)
        a = values.detach().cpu().to(torch.float64).numpy().astype(np.longdouble)
        with np.errstate(all="ignore"):
            diff = np.where(a == r, 0, np.abs(a - r))
        return torch.from_numpy(diff.astype(np.float64))

    def activation_at(self, x: float) -> float:
        """The activation of one compute-dtype value, in the referee's precision."""
        if self.longdouble:
            with np.errstate(all="ignore"):
                return float(self.ld_activation(np.longdouble(x)))
        return float(self.activation(torch.tensor([x], dtype=torch.float64))[0])

    def activate(self, pre):
        if self.longdouble:
            with np.errstate(over="ignore"):
                return self.ld_activation(pre)
        return self.activation(pre)

    def as_float64(self, r) -> torch.Tensor:
        if self.longdouble:
            return torch.from_numpy(np.asarray(r, dtype=np.float64))
        return r

    def error_of(self, values: torch.Tensor, r, *, finite: bool | None = None,
                 abs_reference: torch.Tensor | None = None) -> torch.Tensor:
        """err_vs_ref of ``values`` (any float dtype) against reference r, as float64.

        ``finite`` and ``abs_reference`` (|r| as float64) are shortcuts for callers that
        know them already (see metrics.err_vs_reference); the float64 referee uses them.
        """
        from explorer.metrics import err_vs_reference, safe_ratio

        if not self.longdouble:
            return err_vs_reference(values, r, finite=finite, abs_reference=abs_reference)
        a = values.detach().cpu().to(torch.float64).numpy().astype(np.longdouble)
        with np.errstate(all="ignore"):
            diff = np.abs(a - r)
            diff = np.where(a == r, 0, diff)
        diff64 = torch.from_numpy(diff.astype(np.float64))
        mag64 = torch.from_numpy(np.abs(r).astype(np.float64))
        relative = safe_ratio(diff64, mag64)
        return torch.where(mag64 == 0, diff64, relative)
