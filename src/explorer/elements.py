"""The worst elements of one tap: which rows and units differ most, and why.

A report summarises each tap (max, median, p99). To see *which* elements cancel, this module
reruns the two networks and the referee up to that tap, exactly as ``compare.run`` does
(same parameters, input, kernels, layouts and thread settings, so A and B are the very
values the report measured), and returns the k elements whose A and B are the most ULPs
apart, each with its reference value, condition number and errors.

Pure: ``worst_elements(config, layer, stage, k) -> WorstElements``. Nothing is kept between
calls; the cost is at most one run of the networks up to the tap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from explorer import limits, metrics
from explorer.compare import networks, state_settings
from explorer.config import ExperimentConfig
from explorer.devices import resolve_device
from explorer.models import from_native, make_input_and_parameters, to_native

if TYPE_CHECKING:
    import pandas as pd
from explorer.precision import TORCH_DTYPES, switch_threads, torch_state
from explorer.reference import Referee
from explorer.sides import sides

MAX_ELEMENTS = 100  # rows a caller may ask for
DEFAULT_ELEMENTS = 10


@dataclass(frozen=True)
class ElementRow:
    """One element of a tap: its position, both values, the referee's, and what they mean."""

    rank: int  # 1 = the most ULPs apart
    batch: int  # b in the input's (B, S, C) layout, 0-based
    sample: int  # s, 0-based
    unit: int  # the output channel c of this layer, 0-based
    a: float  # A's value, exactly (float64 holds every float32/16/bf16 value)
    b: float
    reference: float | None  # the referee's value (None when there is no referee)
    abs_diff: float  # |A - B|
    rel_diff: float  # |A - B| / max(|A|, |B|); 0 where A == B
    ulps: float  # representable compute-dtype values between A and B
    condition: float  # (|W||x| + |b|) / |Wx + b| of this layer's affine output (A's);
    # inf where A's Wx + b is exactly 0
    a_rel_err: float | None  # |A - R| / |R| (|A - R| where R == 0)
    b_rel_err: float | None


@dataclass(frozen=True)
class WorstElements:
    layer: int
    stage: str
    per_row: bool  # at most one element per input row
    elements: int  # how many elements the tap has (rows x width)
    referee: str  # what the reference is: "float64", "longdouble (...)" or "none"
    rows: tuple[ElementRow, ...]

    @property
    def tap_name(self) -> str:
        return f"L{self.layer} {self.stage}"

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd  # only for the table: the app starts without it

        return pd.DataFrame([r.__dict__ for r in self.rows],
                            columns=list(ElementRow.__dataclass_fields__))


def worst_per_row(ulps: np.ndarray, rel: np.ndarray, width: int) -> np.ndarray:
    """Flat index of each row's worst element (rows of ``width`` elements), by the same
    order as rank_worst: most ULPs, then the larger relative difference, then the lower
    unit."""
    key = np.where(np.isnan(ulps), np.inf, ulps).reshape(-1, width)
    rel_key = np.where(np.isnan(rel), np.inf, rel).reshape(-1, width)
    most = key == key.max(axis=1, keepdims=True)
    rel_among = np.where(most, rel_key, -np.inf)
    best = most & (rel_key == rel_among.max(axis=1, keepdims=True))
    return np.arange(key.shape[0]) * width + best.argmax(axis=1)  # argmax: the first True


def _check_request(config: ExperimentConfig, layer: int, stage: str, k: int) -> None:
    layers = config.depth + 1
    if not isinstance(layer, int) or not 1 <= layer <= layers:
        raise ValueError(f"layer={layer!r} is not a layer of this network: choose 1 to "
                         f"{layers} (depth {config.depth} + the logits layer).")
    if stage not in ("pre", "post"):
        raise ValueError(f"stage={stage!r}: choose pre (W x + b) or post (after the "
                         "activation).")
    if stage == "post" and layer == layers:
        raise ValueError(f"layer {layer} makes the logits and has no post tap: use "
                         "stage='pre'.")
    if not isinstance(k, int) or not 1 <= k <= MAX_ELEMENTS:
        raise ValueError(f"k={k!r}: ask for 1 to {MAX_ELEMENTS} elements.")


def rank_worst(ulps: np.ndarray, rel: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the k worst elements: most ULPs first, then the larger relative
    difference, then the lower position (so ties always come out the same). An element
    whose difference is NaN (a NaN on either side) counts as the worst."""
    n = ulps.size
    k = min(k, n)
    key = np.where(np.isnan(ulps), np.inf, ulps)
    if k < n:
        # Only elements at or above the k-th largest ULP count can make the list.
        threshold = np.partition(key, n - k)[n - k]
        candidates = np.flatnonzero(key >= threshold)
    else:
        candidates = np.arange(n)
    rel_c = np.where(np.isnan(rel[candidates]), np.inf, rel[candidates])
    order = np.lexsort((candidates, -rel_c, -key[candidates]))
    return candidates[order[:k]]


def worst_elements(config: ExperimentConfig, layer: int, stage: str,
                   k: int = DEFAULT_ELEMENTS, per_row: bool = False) -> WorstElements:
    """The k elements of tap (layer, stage) whose A and B are the most ULPs apart.

    ``per_row``: at most one element per input row (its worst unit), so the table names k
    different rows: with the forum's constant weights every unit of a row is the same sum,
    and the question is which *rows* cancel.
    """
    _check_request(config, layer, stage, k)
    limits.note_run_started()
    device = resolve_device(config.device)
    dtype = TORCH_DTYPES[config.dtype]
    impl_a, impl_b = config.impl_a, config.impl_b
    threads_a, threads_b = (s.threads_setting(config.threads) for s in sides(config))
    # The same state and sequence of operations as compare.run, so the values are its own:
    # each side's kernels, rows per call and thread count (explorer.sides).
    with torch_state(**state_settings(config, device)), torch.inference_mode():
        x, params = make_input_and_parameters(config)
        net_a, net_b = networks(config, params, device, dtype)
        referee = Referee(params, config.activation, dtype, config.rows)
        x_device = x.to(device=device, dtype=dtype)
        h_a, h_b = to_native(impl_a, x_device), to_native(impl_b, x_device)
        h_ref = referee.start(x, dtype) if referee.available else None
        for i in range(layer):
            input_a = from_native(impl_a, h_a)  # (B, S, fan_in): A's input to layer i + 1
            with switch_threads(threads_a):
                pre_a, post_a = net_a.step(i, h_a)
            with switch_threads(threads_b):
                pre_b, post_b = net_b.step(i, h_b)
            pre_ref = referee.layer(i, h_ref) if h_ref is not None else None
            if i + 1 == layer:
                break
            h_a, h_b = post_a, post_b
            h_ref = referee.activate(pre_ref) if pre_ref is not None else None
        weight = params[layer - 1][0].to(dtype)
        bias = net_a.layers[layer - 1].bias
        # |W||x| + |b| over A's input, and the computed |Wx + b|: the layer's cancellation.
        magnitude = metrics.upcast(input_a).abs() @ metrics.upcast(weight).abs().T \
            + metrics.upcast(bias).abs()
        pre_a_bsc = metrics.upcast(from_native(impl_a, pre_a))
        condition = metrics.safe_ratio(magnitude, pre_a_bsc.abs())
        if stage == "post":
            a, b = from_native(impl_a, post_a), from_native(impl_b, post_b)
            ref = referee.activate(pre_ref) if pre_ref is not None else None
        else:
            a, b, ref = from_native(impl_a, pre_a), from_native(impl_b, pre_b), pre_ref
        ulps = metrics.ulp_diff(a.contiguous(), b.contiguous())  # (B, S, C)
        a64, b64 = metrics.upcast(a), metrics.upcast(b)
        abs_d = metrics.abs_diff(a64, b64)
        rel = metrics.safe_ratio(abs_d, torch.maximum(a64.abs(), b64.abs()))
        ulps_flat, rel_flat = ulps.reshape(-1).numpy(), rel.reshape(-1).numpy()
        if per_row:
            heads = worst_per_row(ulps_flat, rel_flat, a.shape[-1])
            picked = heads[rank_worst(ulps_flat[heads], rel_flat[heads], k)]
        else:
            picked = rank_worst(ulps_flat, rel_flat, k)
        has_ref = ref is not None
        if has_ref:
            ref64 = referee.as_float64(ref).reshape(-1)
            err_a = referee.error_of(a64, ref).reshape(-1)
            err_b = referee.error_of(b64, ref).reshape(-1)
    _, samples, width = a.shape
    flat = {name: t.reshape(-1) for name, t in (("a", a64), ("b", b64), ("abs", abs_d),
                                                 ("rel", rel), ("ulps", ulps),
                                                 ("cond", condition))}
    rows = []
    for rank, index in enumerate(int(i) for i in picked):
        row_index, unit = divmod(index, width)
        batch, sample = divmod(row_index, samples)
        rows.append(ElementRow(
            rank=rank + 1, batch=batch, sample=sample, unit=unit,
            a=float(flat["a"][index]), b=float(flat["b"][index]),
            reference=float(ref64[index]) if has_ref else None,
            abs_diff=float(flat["abs"][index]), rel_diff=float(flat["rel"][index]),
            ulps=float(flat["ulps"][index]),
            condition=float(flat["cond"][index]),
            a_rel_err=float(err_a[index]) if has_ref else None,
            b_rel_err=float(err_b[index]) if has_ref else None))
    return WorstElements(layer, stage, per_row, int(a.numel()), referee.info.precision,
                         tuple(rows))
