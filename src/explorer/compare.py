"""compare.run(config) -> Report: both networks and the referee, layer by layer.

The three networks advance in lockstep, one affine layer at a time, and each tap is
measured and then dropped, so memory holds one layer's activations, not the whole network's.
Each implementation still runs its own kernels on its own native layout from start to end:
stepping layer by layer does not change a single operation it performs.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from explorer import allocator, compiled, effective, limits, machine, metrics, openmp, tapstats
from explorer.config import ExperimentConfig
from explorer.decisions import argmax_decisions
from explorer.devices import device_name, resolve_device
from explorer.models import (
    ACTIVATION_MODULES,
    Network,
    from_native,
    make_input_and_parameters,
    to_native,
)
from explorer.precision import (
    TORCH_DTYPES,
    UNIT_ROUNDOFF,
    gamma,
    gamma_probabilistic,
    switch_threads,
    threads_in_effect,
    torch_state,
)
from explorer.reference import Referee
from explorer.report import Report, Summary, TapMetrics
from explorer.sides import Side, sides
from explorer.verdict import judge

# Report.outputs keeps at most this many rows of logits (all metrics use every row).
OUTPUT_ROWS = 1024
HISTOGRAM_BITS = tapstats.HISTOGRAM_BITS
# The per-side bound ratios need each side's exact result (a float64 layer) and |W||x|+|b|
# for B's input: computed this many elements at a time, so they never take a whole
# layer's worth of float64 memory at once (their max does not care about the order).
SIDE_CHUNK_ELEMENTS = 1 << 20


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def _closer(a_err: float | None, b_err: float | None) -> str | None:
    """Whose error against the referee is smaller: decided by the very numbers shown."""
    if a_err is None or b_err is None or math.isnan(a_err) or math.isnan(b_err):
        return None
    if a_err == b_err:
        return "tie"
    return "a" if a_err < b_err else "b"


def _activation_condition(activation: str, x: float) -> float | None:
    """|x f'(x) / f(x)| at one point, in float64: how much the activation multiplies a
    relative change of its input. 0 where x f'(x) = 0; inf where only f(x) = 0."""
    if not math.isfinite(x):
        return None
    module = ACTIVATION_MODULES[activation]()
    with torch.inference_mode(False), torch.enable_grad():
        point = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        value = module(point)
        (slope,) = torch.autograd.grad(value, point, allow_unused=True)
    slope_value = 0.0 if slope is None else float(slope)
    numerator, denominator = abs(x * slope_value), abs(float(value))
    if numerator == 0:
        return 0.0
    return numerator / denominator if denominator else math.inf


def _rel(x: float, y: float) -> float:
    """|x - y| / max(|x|, |y|) for two numbers, under the metrics policy (0/0 = 0)."""
    if x == y:
        return 0.0
    scale = max(abs(x), abs(y))
    return abs(x - y) / scale if scale else math.inf


def _relative_error(value: float, exact: float) -> float | None:
    if not (math.isfinite(value) and math.isfinite(exact)):
        return None
    if value == exact:
        return 0.0
    return abs(value - exact) / abs(exact) if exact else math.inf


@dataclass(frozen=True)
class SideExact:
    """One side's layer output and the exact result for that side's own input (pre taps)."""

    exact: object  # the referee's array for W x + b, x = this side's input
    magnitude_sum: torch.Tensor  # |W||x| + |b| in float64, same x


@dataclass(frozen=True)
class SideInputs:
    """What the per-side bound ratios of a pre tap need: each side's own input to this
    layer (B, S, fan_in), the layer's parameters in the compute dtype, and its index."""

    index: int
    input_a: torch.Tensor
    input_b: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor


def _row_range(t_bsc: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows start..stop of a (B, S, C) tensor seen as (B*S, C): a view when t's memory
    allows one, else a copy of only the batch elements those rows fall in (reshape(-1, C)
    of a permuted conv layout would copy the whole tap to read a few rows of it)."""
    width = t_bsc.shape[-1]
    try:
        return t_bsc.view(-1, width)[start:stop]
    except RuntimeError:  # not viewable as rows: conv2d's and conv1d's (B, C, S) memory
        samples = max(int(t_bsc.shape[1]), 1)
        first, last = start // samples, -(-stop // samples)
        offset = first * samples
        return t_bsc[first:last].reshape(-1, width)[start - offset:stop - offset]


def _bound_note(gamma_value: float, fan_in: int, dtype_name: str, finite: bool) -> str | None:
    if not math.isfinite(gamma_value):
        return (f"vacuous: (fan-in + 1) x unit roundoff = {fan_in + 1} x "
                f"{UNIT_ROUNDOFF[dtype_name]:.3g} >= 1 in {dtype_name}, so the worst-case "
                f"bound is infinite and proves nothing")
    if not finite:
        return "unknown: inf/NaN values at this tap"
    return None


def _side_bound_ratios(engine: str, a: torch.Tensor, b: torch.Tensor, referee: Referee,
                       reference, magnitude_a: torch.Tensor, side: SideInputs,
                       gammas: tuple[float, float]
                       ) -> tuple[tuple[float | None, float | None], ...]:
    """Per side X (A, B) and per gamma g (the worst-case and the probabilistic one):
    max(|X(x) - exact(x)| / (|W||x| + |b|)) / g for X's own input x; None when unknown (no
    referee, vacuous bound, inf/NaN). Row chunk by row chunk: the exact results and B's
    |W||x|+|b| exist for one chunk at a time (a max does not care about the order)."""
    unknown = ((None, None), (None, None))
    if reference is None:
        return unknown
    width = int(a.shape[-1])
    total_rows = a.numel() // max(width, 1)
    rows_ms = magnitude_a.reshape(-1, width)
    reference_rows = referee.first_rows(reference, total_rows, width)
    step = max(1, SIDE_CHUNK_ELEMENTS // max(width, side.input_a.shape[-1]))
    given = referee.longdouble
    program = tapstats.side_program(given_errors=given)
    largest = [-math.inf, -math.inf]
    known = [True, True]
    for start in range(0, total_rows, step):
        chunk = slice(start, start + step)
        a_rows, b_rows = (_row_range(t, start, start + step) for t in (a, b))
        ms_a = rows_ms[chunk]
        if side.index == 0:  # both sides' input is x: the referee's own result is exact
            exact_a = exact_b = reference_rows[chunk]
            ms_b = ms_a
        else:
            in_a, in_b = (_row_range(t, start, start + step)
                          for t in (side.input_a, side.input_b))
            exact_a = referee.exact_layer(side.index, in_a)
            exact_b = referee.exact_layer(side.index, in_b)
            ms_b = _magnitude_sum(in_b, side.weight, side.bias)
        inputs = {"a": a_rows, "b": b_rows, "magnitude_sum": ms_a,
                  "magnitude_sum_b": ms_b}
        if given:
            inputs.update(a_side_err_given=referee.abs_error(a_rows, exact_a),
                          b_side_err_given=referee.abs_error(b_rows, exact_b))
        else:
            inputs.update(exact_a=exact_a, exact_b=exact_b)
        st = tapstats.evaluate(program, inputs, engine)
        for k, name in enumerate("ab"):
            if not all(x.nan_count == 0 and x.inf_count == 0 for x in
                       (st[f"{name}_side_err"], st[f"{name}_side_magnitude"])):
                known[k] = False
            elif known[k]:
                largest[k] = max(largest[k], st[f"{name}_side_share"].max)
    if total_rows == 0:
        return ((0.0, 0.0), (0.0, 0.0))
    return tuple(
        tuple(float(largest[k] / g) if known[k] and math.isfinite(g) and g > 0 else None
              for g in gammas)
        for k in range(2))


def _first_rows_exact(side: SideInputs, referee: Referee, reference,
                      magnitude_a: torch.Tensor, width: int) -> tuple[SideExact, SideExact]:
    """Each side's exact result and |W||x|+|b| for the first effective.SAMPLE_ROWS rows:
    all the effective-precision fit reads."""
    rows = min(magnitude_a.numel() // max(width, 1), effective.SAMPLE_ROWS)
    ms_a = magnitude_a.reshape(-1, width)[:rows]
    if side.index == 0:
        exact = referee.first_rows(reference, rows, width)
        return SideExact(exact, ms_a), SideExact(exact, ms_a)
    in_a, in_b = _row_range(side.input_a, 0, rows), _row_range(side.input_b, 0, rows)
    return (SideExact(referee.exact_layer(side.index, in_a), ms_a),
            SideExact(referee.exact_layer(side.index, in_b),
                      _magnitude_sum(in_b, side.weight, side.bias)))


def _effective_fit(x_bsc: torch.Tensor, out_bsc: torch.Tensor, side_exact: SideExact,
                   referee: Referee, weight: torch.Tensor, bias: torch.Tensor,
                   dtype_name: str, simulated: dict | None = None) -> effective.Fit:
    """Which operand precision explains this side's error on (up to) SAMPLE_ROWS rows.

    ``simulated`` caches the candidates for an input shared by both sides."""
    width = out_bsc.shape[-1]
    rows = min(out_bsc.numel() // max(width, 1), effective.SAMPLE_ROWS)
    exact = referee.first_rows(side_exact.exact, rows, width)
    magnitude = side_exact.magnitude_sum.reshape(-1, width)[:rows]
    observed = referee.abs_error(_row_range(out_bsc, 0, rows), exact)
    statistic = effective.scaled_error_rms(observed, magnitude)
    cached = (simulated or {}).get("found")
    # The other side's candidates serve when they include every one this side needs: all
    # of them (a narrower format is among them only when none was cut short), or enough of
    # the compute dtype's to explain this side's error too.
    if cached is not None and (any(c.bits != cached[0].bits for c in cached) or (
            statistic is not None and any(c.statistic is not None and statistic <= c.statistic
                                          for c in cached))):
        found = cached
    else:
        def error_of(values: torch.Tensor) -> torch.Tensor:
            top, left = values.shape
            return referee.abs_error(values, exact[:top, :left])

        found = effective.candidates(_row_range(x_bsc, 0, rows), weight, bias,
                                     dtype_name, error_of, magnitude, observed=statistic)
        if simulated is not None:
            simulated["found"] = found
    return effective.fit(observed, magnitude, found)


def _tap_metrics(config: ExperimentConfig, layer: int, stage: str, fan_in: int,
                 a: torch.Tensor, b: torch.Tensor, referee: Referee, reference,
                 engine: str, local_b: torch.Tensor | None = None,
                 magnitude_sum: torch.Tensor | None = None,
                 side: SideInputs | None = None,
                 inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
                 fits: tuple[effective.Fit, effective.Fit] | None = None) -> TapMetrics:
    """All metrics of one tap. a, b, local_b: (B, S, C) in the compute dtype.

    magnitude_sum is |W||x| + |b| in float64 for pre taps (x = A's input to this layer);
    side (pre taps) carries what each side's exact result for its own input needs; inputs
    (post taps) are A's and B's pre-activation values, so the verdict can tell what the
    activation did to the worst element from what its input brought in.

    The per-element metrics and their statistics are one program (tapstats.tap_program),
    evaluated by the chosen engine in one pass over the tap.
    """
    dtype = TORCH_DTYPES[config.dtype]
    width = int(a.shape[-1])
    local = local_b is not None and magnitude_sum is not None
    tap_inputs: dict[str, torch.Tensor] = {"a": a, "b": b}
    reference_kind = None
    if referee.available:
        if referee.longdouble:
            # Errors against the extended-precision referee are taken in longdouble.
            reference_kind = "given"
            tap_inputs.update(reference=referee.as_float64(reference),
                              a_err_given=referee.error_of(a, reference),
                              b_err_given=referee.error_of(b, reference))
        else:
            reference_kind = "float64"
            tap_inputs["reference"] = referee.as_float64(reference)
    g = gamma(fan_in + 1, UNIT_ROUNDOFF[config.dtype])
    if local:
        tap_inputs.update(local_b=local_b, magnitude_sum=magnitude_sum)
    program = tapstats.tap_program(config.dtype, reference=reference_kind, local=local,
                                   gamma=g)
    st = tapstats.evaluate(program, tap_inputs, engine)
    abs_a, abs_b, diff, ulp = st["abs_a"], st["abs_b"], st["diff"], st["ulp"]
    nonfinite_a = abs_a.nan_count + abs_a.inf_count
    nonfinite_b = abs_b.nan_count + abs_b.inf_count
    finite = nonfinite_a == 0 and nonfinite_b == 0
    # assert_close(B, A): passes when no element fails and none is NaN; the tolerances it
    # would have needed are NaN when a NaN is present.
    has_nan = diff.nan_count > 0
    passes = st["tol_fail"].max == 0.0 and not has_nan
    needed_atol = math.nan if has_nan else diff.max
    needed_rtol = math.nan if has_nan else st["tol_rtol"].max

    # The two elements the verdict talks about: the most ULPs apart, the largest |A-B|.
    worst: dict[str, float | int | None] = {}
    if ulp.max and ulp.max > 0 and ulp.argmax is not None:
        i = ulp.argmax
        a_i, b_i = float(tapstats.element(a, i)), float(tapstats.element(b, i))
        worst.update(worst_ulp_row=i // width, worst_ulp_col=i % width,
                     worst_ulp_a=a_i, worst_ulp_b=b_i,
                     worst_ulp_rel_diff=tapstats.values_at(program, tap_inputs, i,
                                                           ("rel",))["rel"])
        if magnitude_sum is not None:
            denominator = abs(a_i)
            numerator = float(tapstats.element(magnitude_sum, i))
            worst["worst_ulp_condition"] = numerator / denominator if denominator \
                else math.inf
        if inputs is not None:
            x_a = float(tapstats.element(inputs[0], i))
            x_b = float(tapstats.element(inputs[1], i))
            worst.update(worst_ulp_input_a=x_a, worst_ulp_input_rel_diff=_rel(x_a, x_b),
                         worst_ulp_act_condition=_activation_condition(
                             config.activation, x_a))
            if referee.available:
                worst.update(
                    worst_ulp_act_error_a=_relative_error(a_i, referee.activation_at(x_a)),
                    worst_ulp_act_error_b=_relative_error(b_i, referee.activation_at(x_b)))
    if diff.max and diff.max > 0 and math.isfinite(diff.max) and diff.argmax is not None:
        at = tapstats.values_at(program, tap_inputs, diff.argmax, ("rel", "ulp", "abs_a"))
        worst.update(worst_abs_rel_diff=at["rel"], worst_abs_ulp_diff=at["ulp"],
                     worst_abs_value=at["abs_a"])

    ref_fields: dict[str, float | None] = dict.fromkeys(
        ("ref_max_abs_value", "a_max", "a_mean", "a_median", "b_max", "b_mean", "b_median"))
    if reference_kind is not None:
        err_a, err_b = st["a_err"], st["b_err"]
        ref_fields.update(
            ref_max_abs_value=st["abs_ref"].max,
            a_max=err_a.max, a_mean=err_a.mean, a_median=err_a.median,
            b_max=err_b.max, b_mean=err_b.mean, b_median=err_b.median)

    local_fields: dict[str, float | str | None] = dict.fromkeys(
        ("abs", "rel", "ulp", "bound", "ratio", "ratio_p99", "cond_max", "cond_median",
         "note", "a_ratio", "b_ratio", "a_prob", "b_prob"))
    if local:
        local_diff, bound = st["local_diff"], st["bound"]
        # local_b is finite where A is and local |A - B| is; |W||x|+|b| where g times it is.
        local_finite = finite and local_diff.nan_count == 0 and local_diff.inf_count == 0
        sum_finite = math.isfinite(g) and bound.nan_count == 0 and bound.inf_count == 0
        # A vacuous (infinite) or non-finite bound proves nothing: its ratio is unknown,
        # never 0 (x / inf would say "0% of the bound used").
        note = _bound_note(g, fan_in, config.dtype, local_finite and sum_finite)
        if local_finite and sum_finite:
            ratio = st["bound_ratio"]
            local_fields.update(bound=bound.max, ratio=ratio.max, ratio_p99=ratio.p99)
        condition = st["condition"]
        local_fields.update(abs=local_diff.max, rel=st["local_rel"].max, ulp=st["local_ulp"].max,
                            note=note, cond_max=condition.max, cond_median=condition.median)
        if side is not None:
            gammas = (g, gamma_probabilistic(fan_in + 1, UNIT_ROUNDOFF[config.dtype]))
            ((local_fields["a_ratio"], local_fields["a_prob"]),
             (local_fields["b_ratio"], local_fields["b_prob"])) = _side_bound_ratios(
                engine, a, b, referee, reference, magnitude_sum, side, gammas)

    return TapMetrics(
        layer=layer, stage=stage, width=width, fan_in=fan_in,
        max_abs_diff=diff.max, mean_abs_diff=diff.mean, median_abs_diff=diff.median,
        p99_abs_diff=diff.p99,
        max_rel_diff=st["rel"].max, mean_rel_diff=st["rel"].mean,
        median_rel_diff=st["rel"].median, p99_rel_diff=st["rel"].p99,
        max_ulp_diff=ulp.max, mean_ulp_diff=ulp.mean,
        median_ulp_diff=ulp.median, p99_ulp_diff=ulp.p99,
        max_bits=st["bits"].max, mean_bits=st["bits"].mean,
        diff_nan_count=diff.nan_count,
        max_abs_value=abs_a.max, mean_abs_value=abs_a.mean, rms_value=abs_a.rms,
        headroom_bits=metrics.headroom_bits(abs_a.max, dtype), nonfinite_count=nonfinite_a,
        b_max_abs_value=abs_b.max, b_mean_abs_value=abs_b.mean, b_rms_value=abs_b.rms,
        b_headroom_bits=metrics.headroom_bits(abs_b.max, dtype),
        b_nonfinite_count=nonfinite_b,
        ref_max_abs_value=ref_fields["ref_max_abs_value"],
        a_max_rel_err_vs_ref=ref_fields["a_max"], a_mean_rel_err_vs_ref=ref_fields["a_mean"],
        a_median_rel_err_vs_ref=ref_fields["a_median"],
        b_max_rel_err_vs_ref=ref_fields["b_max"], b_mean_rel_err_vs_ref=ref_fields["b_mean"],
        b_median_rel_err_vs_ref=ref_fields["b_median"],
        closer_to_ref=_closer(ref_fields["a_max"], ref_fields["b_max"]),
        local_max_abs_diff=local_fields["abs"], local_max_rel_diff=local_fields["rel"],
        local_max_ulp_diff=local_fields["ulp"], bound_max=local_fields["bound"],
        bound_ratio=local_fields["ratio"], bound_ratio_p99=local_fields["ratio_p99"],
        condition_max=local_fields["cond_max"], condition_median=local_fields["cond_median"],
        assert_close_passes=passes, needed_atol=needed_atol, needed_rtol=needed_rtol,
        bits_histogram=st["bits"].histogram,
        bound_note=local_fields["note"], a_bound_ratio=local_fields["a_ratio"],
        b_bound_ratio=local_fields["b_ratio"],
        a_prob_bound_ratio=local_fields["a_prob"], b_prob_bound_ratio=local_fields["b_prob"],
        a_effective_bits=fits[0].bits if fits else None,
        b_effective_bits=fits[1].bits if fits else None,
        a_effective_note=fits[0].describe() if fits else None,
        b_effective_note=fits[1].describe() if fits else None,
        a_effective_format=fits[0].format if fits else None,
        b_effective_format=fits[1].format if fits else None,
        **worst,
    )


def _magnitude_sum(x_bsc: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
                   ) -> torch.Tensor:
    """|W||x| + |b| in float64: the scale every rounding error of the layer is measured in.

    Two arrays of the layer's size, not four: |x| is taken in the float64 copy (a new
    array, unless x already was float64) and |b| added into the product in place."""
    x64 = metrics.upcast(x_bsc)
    x64 = x64.abs() if x64.data_ptr() == x_bsc.data_ptr() else x64.abs_()
    total = x64 @ metrics.upcast(weight).abs().T
    del x64
    return total.add_(metrics.upcast(bias).abs())


class Cancelled(Exception):
    """The caller's ``should_stop`` asked to abandon the run (say, its browser session left)."""


def run(config: ExperimentConfig, *, should_stop: Callable[[], bool] | None = None) -> Report:
    """Run both implementations and the referee; measure every tap. Pure: config in, report out.

    ``should_stop`` is asked before each affine layer; when it returns True the run stops
    there, frees what it allocated and raises Cancelled (nothing partial is returned).
    """
    started = time.perf_counter()
    limits.note_run_started()  # later estimates leave out the first run's one-off state
    allocator.tune()  # reuse freed temporaries instead of page-faulting fresh ones
    device = resolve_device(config.device)
    dtype = TORCH_DTYPES[config.dtype]
    if device.type == "mps" and dtype == torch.float64:
        raise ValueError("dtype='float64' is not available on mps: Apple GPUs have no "
                         "float64. Use dtype=float32, or device=cpu for float64.")
    on_cpu = device.type == "cpu"
    # Probed once per process, outside the run's lock (the probe takes it itself).
    bf16_honoured = machine.cpu_bf16_honoured() if on_cpu else None
    impl_a, impl_b = config.impl_a, config.impl_b
    side_a, side_b = sides(config)
    threads_a, threads_b = (s.threads_setting(config.threads) for s in (side_a, side_b))
    for side in (side_a, side_b):
        if side.compiled:  # before taking the lock: refuse early, say what to do
            compiled.check_available(device)
    with torch_state(**state_settings(config, device)) as flags, torch.inference_mode():
        # Inside the state block: the thread count is set before any parallel torch call.
        x, params = make_input_and_parameters(config)
        # Every tap's elements: one pre tap per layer and a post tap per hidden layer.
        engine = tapstats.choose_engine(
            config.rows * (2 * sum(config.hidden_widths) + config.num_classes))
        net_a, net_b = networks(config, params, device, dtype)
        threads_used: dict[str, int] = {}
        referee = Referee(params, config.activation, dtype, config.rows)
        x_device = x.to(device=device, dtype=dtype)
        h_a, h_b = to_native(impl_a, x_device), to_native(impl_b, x_device)
        h_ref = referee.start(x, dtype) if referee.available else None
        taps: list[TapMetrics] = []
        last = len(net_a) - 1
        feats_a = feats_b = x_device
        for i in range(len(net_a)):
            if should_stop is not None and should_stop():
                raise Cancelled(f"run abandoned before layer {i + 1} of {len(net_a)}: "
                                "the caller asked to stop (its session is gone)")
            input_a = from_native(impl_a, h_a)  # (B, S, fan_in): A's input to this layer
            input_b = from_native(impl_b, h_b)  # B's own input (differs from A's after L1)
            # Each side computes with its own thread count; the rest of the run with the
            # run's own (threads).
            with switch_threads(threads_a) as threads_used["a"]:
                pre_a, post_a = net_a.step(i, h_a)
            with switch_threads(threads_b) as threads_used["b"]:
                pre_b, post_b = net_b.step(i, h_b)
                # Local: B's layer on A's input, so only this layer's rounding differs.
                local_b = pre_b if i == 0 else net_b.step(i, to_native(impl_b, input_a),
                                                          pre_only=True)[0]
            pre_ref = referee.layer(i, h_ref) if h_ref is not None else None
            weight, bias = params[i][0].to(dtype), net_a.layers[i].bias
            magnitude_a = _magnitude_sum(input_a, weight, bias)
            # Each side against the exact result for its own input (computed in chunks in
            # the tap; at layer 1 both inputs are x, whose exact result is the referee's).
            side = SideInputs(i, input_a, input_b, weight, bias) if pre_ref is not None \
                else None
            pre_a_bsc, pre_b_bsc = from_native(impl_a, pre_a), from_native(impl_b, pre_b)
            fits = None
            if side is not None:
                # The fit reads the first rows only; their exact results are made here.
                firsts = _first_rows_exact(side, referee, pre_ref, magnitude_a,
                                           int(pre_a_bsc.shape[-1]))
                # Candidates' errors depend only on the input: at layer 1 both sides share it.
                shared: dict | None = {} if i == 0 else None
                fits = tuple(
                    _effective_fit(x_side, out, exact, referee, weight, bias, config.dtype,
                                   shared)
                    for x_side, out, exact in ((input_a, pre_a_bsc, firsts[0]),
                                               (input_b, pre_b_bsc, firsts[1])))
                del firsts
            taps.append(_tap_metrics(
                config, i + 1, "pre", params[i][0].shape[1], pre_a_bsc, pre_b_bsc,
                referee, pre_ref, engine, local_b=from_native(impl_b, local_b),
                magnitude_sum=magnitude_a, side=side, fits=fits))
            del side, magnitude_a, local_b
            if i == last:
                logits_a, logits_b = pre_a_bsc, pre_b_bsc
                logits_ref = pre_ref
                break
            h_a, h_b = post_a, post_b
            h_ref = referee.activate(pre_ref) if pre_ref is not None else None
            feats_a, feats_b = from_native(impl_a, h_a), from_native(impl_b, h_b)
            taps.append(_tap_metrics(config, i + 1, "post", params[i][0].shape[1],
                                     feats_a, feats_b, referee, h_ref, engine,
                                     inputs=(pre_a_bsc, pre_b_bsc)))
        # The forum's two printed numbers, computed the way the forum computed them.
        logits_mean_diff = float(torch.mean(logits_b - logits_a))
        feats_sum_diff = float((feats_b - feats_a).sum())
        # Logits for plots and export; the first rows only, so cached reports stay small.
        keep = slice(0, OUTPUT_ROWS)
        outputs = {
            "logits_a": metrics.upcast(logits_a).reshape(-1, config.num_classes)[keep].numpy(),
            "logits_b": metrics.upcast(logits_b).reshape(-1, config.num_classes)[keep].numpy(),
        }
        if logits_ref is not None:
            outputs["logits_ref"] = referee.as_float64(logits_ref).reshape(
                -1, config.num_classes)[keep].numpy()
        decisions = argmax_decisions(logits_a, logits_b)
        environment = _environment(config, device, flags, referee, engine, bf16_honoured)
        environment.update(_variant_environment(config, threads_used, (net_a, net_b)))

    summary = dataclasses.replace(_summarize(taps, logits_mean_diff, feats_sum_diff),
                                  **dataclasses.asdict(decisions))
    verdict = judge(config, taps, summary, referee.info, bf16_honoured)
    return Report(config=config, environment=environment, taps=tuple(taps), summary=summary,
                  verdict=verdict, outputs=outputs,
                  elapsed_seconds=time.perf_counter() - started,
                  compile_seconds=net_a.compile_seconds + net_b.compile_seconds)


def state_settings(config: ExperimentConfig, device: torch.device) -> dict:
    """torch_state's settings for a run of config: every rerun of the networks (say, the
    worst-elements table) uses these, so its values are the report's own."""
    on_cuda, on_cpu = device.type == "cuda", device.type == "cpu"
    return dict(
        threads=config.threads,
        conv_tf32=config.conv_tf32 if on_cuda else "default",
        matmul_tf32=config.matmul_tf32 if on_cuda else "default",
        cudnn_deterministic=config.cudnn_deterministic if on_cuda else None,
        cudnn_benchmark=config.cudnn_benchmark if on_cuda else None,
        cpu_matmul_precision=config.cpu_matmul_precision if on_cpu else "default",
        cpu_conv_precision=config.cpu_conv_precision if on_cpu else "default",
        side_threads=tuple(s.threads_setting(config.threads) for s in sides(config)),
    )


def _engine_setting_or_invalid() -> str:
    """EXPLORER_METRICS_ENGINE as the run read it (auto, numba, torch)."""
    try:
        return tapstats.engine_setting()
    except ValueError:
        return "invalid"


def networks(config: ExperimentConfig, params, device: torch.device, dtype: torch.dtype
             ) -> tuple[Network, Network]:
    """A's and B's networks, each with its side's kernel, emulation and rows per call."""
    return tuple(_network(side, params, config, device, dtype) for side in sides(config))


def _network(side: Side, params, config: ExperimentConfig, device: torch.device,
             dtype: torch.dtype) -> Network:
    return Network(side.implementation, params, config.activation, device, dtype,
                   side.emulation, rows_per_call=side.rows_per_call)


def _variant_environment(config: ExperimentConfig, threads_used: dict[str, int],
                         networks: tuple[Network, Network]) -> dict:
    """Each side's thread count as read while it computed, and how it was compiled."""
    backend = {s.name: compiled.BACKEND if s.compiled else "eager" for s in sides(config)}
    return {
        "threads_a": threads_used.get("a", threads_in_effect(config.threads)),
        "threads_b": threads_used.get("b", threads_in_effect(config.threads)),
        "rows_per_call_a": min(config.rows_per_call_a or config.rows, config.rows),
        "rows_per_call_b": min(config.rows_per_call_b or config.rows, config.rows),
        "compile_backend_a": backend["a"],
        "compile_backend_b": backend["b"],
        "compile_seconds": sum(n.compile_seconds for n in networks),
    }


def _max(values) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return max(kept) if kept else None


def _format_of_fewest(pre: list[TapMetrics], side: str) -> str | None:
    """The format named at the layer with the fewest effective bits (the first such)."""
    known = [t for t in pre if getattr(t, f"{side}_effective_bits") is not None]
    if not known:
        return None
    tap = min(known, key=lambda t: getattr(t, f"{side}_effective_bits"))
    return getattr(tap, f"{side}_effective_format")


def _fewest_bits(values) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _summarize(taps: list[TapMetrics], logits_mean_diff: float, feats_sum_diff: float
               ) -> Summary:
    logits = taps[-1]
    first_bad = next((t for t in taps if t.nonfinite_count or t.b_nonfinite_count), None)
    finite_taps = taps if first_bad is None else taps[:taps.index(first_bad)]
    pre = [t for t in taps if t.stage == "pre"]
    return Summary(
        logits_mean_diff=logits_mean_diff,
        feats_sum_diff=feats_sum_diff,
        max_abs_diff=_max(t.max_abs_diff for t in taps) or 0.0,
        max_rel_diff=_max(t.max_rel_diff for t in taps) or 0.0,
        max_ulp_diff=_max(t.max_ulp_diff for t in taps) or 0.0,
        max_bits=_max(t.max_bits for t in taps) or 0.0,
        logits_max_abs_diff=logits.max_abs_diff,
        logits_max_rel_diff=logits.max_rel_diff,
        max_bound_ratio=_max(t.bound_ratio for t in pre),
        closer_to_ref=_closer(logits.a_max_rel_err_vs_ref, logits.b_max_rel_err_vs_ref),
        a_logits_max_rel_err_vs_ref=logits.a_max_rel_err_vs_ref,
        b_logits_max_rel_err_vs_ref=logits.b_max_rel_err_vs_ref,
        max_condition=_max(t.condition_max for t in pre),
        nonfinite_a=sum(t.nonfinite_count for t in taps),
        nonfinite_b=sum(t.b_nonfinite_count for t in taps),
        first_nonfinite_layer=first_bad.layer if first_bad else None,
        first_nonfinite_stage=first_bad.stage if first_bad else None,
        a_max_bound_ratio=_max(t.a_bound_ratio for t in pre),
        b_max_bound_ratio=_max(t.b_bound_ratio for t in pre),
        a_effective_bits=_fewest_bits(t.a_effective_bits for t in pre),
        b_effective_bits=_fewest_bits(t.b_effective_bits for t in pre),
        a_effective_format=_format_of_fewest(pre, "a"),
        b_effective_format=_format_of_fewest(pre, "b"),
        finite_taps=len(finite_taps),
        finite_max_abs_diff=_max(t.max_abs_diff for t in finite_taps),
        finite_max_rel_diff=_max(t.max_rel_diff for t in finite_taps),
        finite_max_ulp_diff=_max(t.max_ulp_diff for t in finite_taps),
    )


def _environment(config: ExperimentConfig, device: torch.device, flags: dict,
                 referee: Referee, engine: str, bf16_honoured: dict | None = None) -> dict:
    threads = int(flags["threads"])
    return {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(device),
        "dtype": config.dtype,
        # Summation order, and so the numbers, depend on these: see explorer.machine.
        "threads": threads,  # each side's own: threads_a, threads_b (_variant_environment)
        "omp_wait_policy": openmp.wait_policy(),  # CPU use under load; see explorer.openmp
        **machine.isa_facts(),
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        # CUDA switches only act on CUDA devices; shown as in effect during the run.
        "backend_flags": {k: v for k, v in flags.items() if k != "threads"},
        "backend_flags_apply": device.type == "cuda",
        # oneDNN's float32 precision in force during the run (CPU); "none" is torch's
        # default, full float32. Whether bf16 is really honoured is probed once.
        "onednn_matmul_fp32_precision": flags.get("onednn_matmul_fp32_precision"),
        "onednn_conv_fp32_precision": flags.get("onednn_conv_fp32_precision"),
        "onednn_flags_apply": device.type == "cpu",
        "cpu_bf16_honoured": None if bf16_honoured is None else bf16_honoured["matmul"],
        "cpu_bf16_conv_honoured": None if bf16_honoured is None else bf16_honoured["conv"],
        "referee": referee.info.precision,
        "referee_note": referee.info.note,
        # Which engine computed the per-tap statistics (the numbers are the same either
        # way; see explorer.tapstats) and why.
        "metrics_engine": engine,
        "metrics_engine_note": tapstats.engine_note(),
        "metrics_engine_setting": _engine_setting_or_invalid(),
    }
