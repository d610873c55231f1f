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

from explorer import allocator, compiled, effective, machine, metrics
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
HISTOGRAM_BITS = {"float64": 64, "float32": 32, "float16": 16, "bfloat16": 16}


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def _closer(a_err: float | None, b_err: float | None) -> str | None:
    """Whose error against the referee is smaller: decided by the very numbers shown."""
    if a_err is None or b_err is None or math.isnan(a_err) or math.isnan(b_err):
        return None
    if a_err == b_err:
        return "tie"
    return "a" if a_err < b_err else "b"


def _argmax(values: torch.Tensor) -> int | None:
    """Flat index of the largest value, NaN left out; None when there is none."""
    flat = values.reshape(-1)
    if flat.numel() == 0:
        return None
    nan = torch.isnan(flat)
    if bool(nan.all()):
        return None
    if bool(nan.any()):
        flat = flat.masked_fill(nan, -math.inf)
    return int(torch.argmax(flat))


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


def _bound_note(gamma_value: float, fan_in: int, dtype_name: str, finite: bool) -> str | None:
    if not math.isfinite(gamma_value):
        return (f"vacuous: (fan-in + 1) x unit roundoff = {fan_in + 1} x "
                f"{UNIT_ROUNDOFF[dtype_name]:.3g} >= 1 in {dtype_name}, so the worst-case "
                f"bound is infinite and proves nothing")
    if not finite:
        return "unknown: inf/NaN values at this tap"
    return None


def _side_bound_ratios(side: torch.Tensor, side_exact: SideExact | None, referee: Referee,
                       gammas: tuple[float, float]) -> tuple[float | None, float | None]:
    """max |X(x) - exact(x)| / (g (|W||x| + |b|)) for g = the worst-case and the
    probabilistic gamma; None when unknown (no referee, vacuous bound, inf/NaN)."""
    if side_exact is None:
        return None, None
    error = referee.abs_error(side, side_exact.exact)
    magnitude = side_exact.magnitude_sum
    if not (metrics.all_finite(error) and metrics.all_finite(magnitude)):
        return None, None
    if not error.numel():
        return 0.0, 0.0
    error_max_share = metrics.safe_ratio(error, magnitude, finite=True).max()
    return tuple(float(error_max_share / g) if math.isfinite(g) and g > 0 else None
                 for g in gammas)


def _effective_fit(x_bsc: torch.Tensor, out_bsc: torch.Tensor, side_exact: SideExact,
                   referee: Referee, weight: torch.Tensor, bias: torch.Tensor,
                   dtype_name: str, simulated: dict | None = None) -> effective.Fit:
    """Which operand precision explains this side's error on (up to) SAMPLE_ROWS rows.

    ``simulated`` caches the candidates' errors for an input shared by both sides."""
    width, fan_in = out_bsc.shape[-1], x_bsc.shape[-1]
    rows = min(out_bsc.numel() // max(width, 1), effective.SAMPLE_ROWS)
    exact = referee.first_rows(side_exact.exact, rows, width)
    magnitude = side_exact.magnitude_sum.reshape(-1, width)[:rows]
    observed = referee.abs_error(out_bsc.reshape(-1, width)[:rows], exact)
    if simulated is None or not simulated:
        x_rows = x_bsc.reshape(-1, fan_in)[:rows]
        errors = {bits: referee.abs_error(effective.simulate(x_rows, weight, bias, bits,
                                                             TORCH_DTYPES[dtype_name]), exact)
                  for bits in effective.candidates_for(dtype_name)}
        if simulated is not None:
            simulated.update(errors)
    else:
        errors = simulated
    return effective.fit(observed, magnitude, errors)


def _tap_metrics(config: ExperimentConfig, layer: int, stage: str, fan_in: int,
                 a: torch.Tensor, b: torch.Tensor, referee: Referee, reference,
                 local_b: torch.Tensor | None = None,
                 magnitude_sum: torch.Tensor | None = None,
                 sides_exact: tuple[SideExact, SideExact] | None = None,
                 inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
                 fits: tuple[effective.Fit, effective.Fit] | None = None) -> TapMetrics:
    """All metrics of one tap. a, b, local_b: (B, S, C) in the compute dtype.

    magnitude_sum is |W||x| + |b| in float64 for pre taps (x = A's input to this layer);
    sides_exact (pre taps) carries each side's exact result for its own input; inputs (post
    taps) are A's and B's pre-activation values, so the verdict can tell what the
    activation did to the worst element from what its input brought in.
    """
    dtype = TORCH_DTYPES[config.dtype]
    width = int(a.shape[-1])
    a64, b64 = metrics.upcast(a), metrics.upcast(b)
    # Speed (see README, Performance): finiteness is checked once per tap so differences and
    # ratios can skip their NaN/inf fix-ups, |A| and |B| are computed once and shared, and
    # median/p99 (an O(n) selection each) are only computed where the report shows them.
    # Every value is the same as computing each metric on its own. Temporaries the size of
    # the layer are dropped (del) as soon as they are summarised, to keep the peak low.
    nonfinite_a = a.numel() - int(torch.isfinite(a).sum())  # counted in the compute dtype
    nonfinite_b = b.numel() - int(torch.isfinite(b).sum())
    finite = nonfinite_a == 0 and nonfinite_b == 0
    abs_a, abs_b = a64.abs(), b64.abs()
    abs_d = metrics.abs_diff(a64, b64, finite=finite)
    rel_d = metrics.safe_ratio(abs_d, torch.maximum(abs_a, abs_b), finite=finite)
    # With A and B finite no difference, ratio or ULP count below can be NaN.
    s_abs = metrics.summarize(abs_d, no_nan=finite)
    s_rel = metrics.summarize(rel_d, no_nan=finite)
    ulp_d = metrics.ulp_diff(a, b)
    s_ulp = metrics.summarize(ulp_d, no_nan=finite)
    # The two elements the verdict talks about: the most ULPs apart, the largest |A-B|.
    worst: dict[str, float | int | None] = {}
    if s_ulp.max and s_ulp.max > 0:
        i = _argmax(ulp_d)
        if i is not None:
            flat_a, flat_b = a64.reshape(-1), b64.reshape(-1)
            worst.update(worst_ulp_row=i // width, worst_ulp_col=i % width,
                         worst_ulp_a=float(flat_a[i]), worst_ulp_b=float(flat_b[i]),
                         worst_ulp_rel_diff=float(rel_d.reshape(-1)[i]))
            if magnitude_sum is not None:
                denominator = abs(float(flat_a[i]))
                numerator = float(magnitude_sum.reshape(-1)[i])
                worst["worst_ulp_condition"] = (numerator / denominator if denominator
                                                else math.inf)
            if inputs is not None:
                x_a = float(inputs[0].reshape(-1)[i])
                x_b = float(inputs[1].reshape(-1)[i])
                worst.update(worst_ulp_input_a=x_a, worst_ulp_input_rel_diff=_rel(x_a, x_b),
                             worst_ulp_act_condition=_activation_condition(
                                 config.activation, x_a))
                if referee.available:
                    worst.update(
                        worst_ulp_act_error_a=_relative_error(
                            float(flat_a[i]), referee.activation_at(x_a)),
                        worst_ulp_act_error_b=_relative_error(
                            float(flat_b[i]), referee.activation_at(x_b)))
    if s_abs.max and s_abs.max > 0 and math.isfinite(s_abs.max):
        i = _argmax(abs_d)
        if i is not None:
            worst.update(worst_abs_rel_diff=float(rel_d.reshape(-1)[i]),
                         worst_abs_ulp_diff=float(ulp_d.reshape(-1)[i]),
                         worst_abs_value=float(abs_a.reshape(-1)[i]))
    del rel_d
    bits = metrics.bits_of_error(ulp_d)
    del ulp_d
    s_bits = metrics.summarize(bits, quantiles=False, no_nan=finite)
    histogram = metrics.histogram_of_bits(bits, HISTOGRAM_BITS[config.dtype])
    del bits
    mag_a = metrics.summarize(abs_a, quantiles=False, no_nan=finite)
    mag_b = metrics.summarize(abs_b, quantiles=False, no_nan=finite)
    rms_a = metrics.rms(abs_a, finite=finite, max_abs=mag_a.max)
    rms_b = metrics.rms(abs_b, finite=finite, max_abs=mag_b.max)
    del abs_b
    tol = metrics.tolerance(a64, b64, config.dtype, diff=abs_d, abs_a=abs_a, finite=finite)
    del abs_d

    ref_fields: dict[str, float | None] = dict.fromkeys(
        ("ref_max_abs_value", "a_max", "a_mean", "a_median", "b_max", "b_mean", "b_median"))
    if referee.available:
        ref64 = referee.as_float64(reference)
        abs_ref = ref64.abs()
        ref_finite = finite and metrics.all_finite(ref64)
        err_a = metrics.summarize(referee.error_of(a64, reference, finite=ref_finite,
                                                  abs_reference=abs_ref), no_nan=ref_finite)
        err_b = metrics.summarize(referee.error_of(b64, reference, finite=ref_finite,
                                                  abs_reference=abs_ref), no_nan=ref_finite)
        ref_max = float(metrics.summarize(abs_ref, quantiles=False, no_nan=ref_finite).max)
        del ref64, abs_ref
        ref_fields.update(
            ref_max_abs_value=ref_max,
            a_max=err_a.max, a_mean=err_a.mean, a_median=err_a.median,
            b_max=err_b.max, b_mean=err_b.mean, b_median=err_b.median)

    local: dict[str, float | str | None] = dict.fromkeys(
        ("abs", "rel", "ulp", "bound", "ratio", "ratio_p99", "cond_max", "cond_median",
         "note", "a_ratio", "b_ratio", "a_prob", "b_prob"))
    del b64
    if local_b is not None and magnitude_sum is not None:
        local64 = metrics.upcast(local_b)
        local_finite = finite and metrics.all_finite(local64)
        local_abs = metrics.abs_diff(a64, local64, finite=local_finite)
        local_rel = metrics.safe_ratio(local_abs, torch.maximum(abs_a, local64.abs()),
                                       finite=local_finite)
        del local64
        local_max_rel = metrics.summarize(local_rel, quantiles=False, no_nan=local_finite).max
        del local_rel
        local_max_ulp = metrics.summarize(metrics.ulp_diff(a, local_b), quantiles=False,
                                          no_nan=local_finite).max
        g = gamma(fan_in + 1, UNIT_ROUNDOFF[config.dtype])
        sum_finite = metrics.all_finite(magnitude_sum)
        bound_known = local_finite and sum_finite and math.isfinite(g)
        # A vacuous (infinite) or non-finite bound proves nothing: its ratio is unknown,
        # never 0 (x / inf would say "0% of the bound used").
        note = _bound_note(g, fan_in, config.dtype, local_finite and sum_finite)
        if bound_known:
            bound = g * magnitude_sum
            ratio = metrics.summarize(metrics.safe_ratio(local_abs, 2 * bound, finite=True),
                                      no_nan=True)
            local.update(bound=metrics.summarize(bound, quantiles=False, no_nan=True).max,
                         ratio=ratio.max, ratio_p99=ratio.p99)
            del bound
        condition = metrics.summarize(metrics.safe_ratio(magnitude_sum, abs_a,
                                                         finite=finite and sum_finite),
                                      no_nan=finite and sum_finite)
        local.update(abs=metrics.summarize(local_abs, quantiles=False, no_nan=local_finite).max,
                     rel=local_max_rel, ulp=local_max_ulp, note=note,
                     cond_max=condition.max, cond_median=condition.median)
        if sides_exact is not None:
            gammas = (g, gamma_probabilistic(fan_in + 1, UNIT_ROUNDOFF[config.dtype]))
            (local["a_ratio"], local["a_prob"]) = _side_bound_ratios(a, sides_exact[0],
                                                                     referee, gammas)
            (local["b_ratio"], local["b_prob"]) = _side_bound_ratios(b, sides_exact[1],
                                                                     referee, gammas)

    return TapMetrics(
        layer=layer, stage=stage, width=width, fan_in=fan_in,
        max_abs_diff=s_abs.max, mean_abs_diff=s_abs.mean, median_abs_diff=s_abs.median,
        p99_abs_diff=s_abs.p99,
        max_rel_diff=s_rel.max, mean_rel_diff=s_rel.mean, median_rel_diff=s_rel.median,
        p99_rel_diff=s_rel.p99,
        max_ulp_diff=s_ulp.max, mean_ulp_diff=s_ulp.mean, median_ulp_diff=s_ulp.median,
        p99_ulp_diff=s_ulp.p99, max_bits=s_bits.max, mean_bits=s_bits.mean,
        diff_nan_count=s_abs.nan_count,
        max_abs_value=mag_a.max, mean_abs_value=mag_a.mean,
        rms_value=rms_a,
        headroom_bits=metrics.headroom_bits(mag_a.max, dtype), nonfinite_count=nonfinite_a,
        b_max_abs_value=mag_b.max, b_mean_abs_value=mag_b.mean,
        b_rms_value=rms_b,
        b_headroom_bits=metrics.headroom_bits(mag_b.max, dtype), b_nonfinite_count=nonfinite_b,
        ref_max_abs_value=ref_fields["ref_max_abs_value"],
        a_max_rel_err_vs_ref=ref_fields["a_max"], a_mean_rel_err_vs_ref=ref_fields["a_mean"],
        a_median_rel_err_vs_ref=ref_fields["a_median"],
        b_max_rel_err_vs_ref=ref_fields["b_max"], b_mean_rel_err_vs_ref=ref_fields["b_mean"],
        b_median_rel_err_vs_ref=ref_fields["b_median"],
        closer_to_ref=_closer(ref_fields["a_max"], ref_fields["b_max"]),
        local_max_abs_diff=local["abs"], local_max_rel_diff=local["rel"],
        local_max_ulp_diff=local["ulp"], bound_max=local["bound"],
        bound_ratio=local["ratio"], bound_ratio_p99=local["ratio_p99"],
        condition_max=local["cond_max"], condition_median=local["cond_median"],
        assert_close_passes=tol.passes_default, needed_atol=tol.needed_atol,
        needed_rtol=tol.needed_rtol,
        bits_histogram=histogram,
        bound_note=local["note"], a_bound_ratio=local["a_ratio"], b_bound_ratio=local["b_ratio"],
        a_prob_bound_ratio=local["a_prob"], b_prob_bound_ratio=local["b_prob"],
        a_effective_bits=fits[0].bits if fits else None,
        b_effective_bits=fits[1].bits if fits else None,
        a_effective_note=fits[0].describe() if fits else None,
        b_effective_note=fits[1].describe() if fits else None,
        **worst,
    )


def _magnitude_sum(x_bsc: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
                   ) -> torch.Tensor:
    """|W||x| + |b| in float64: the scale every rounding error of the layer is measured in."""
    return metrics.upcast(x_bsc).abs() @ metrics.upcast(weight).abs().T \
        + metrics.upcast(bias).abs()


class Cancelled(Exception):
    """The caller's ``should_stop`` asked to abandon the run (say, its browser session left)."""


def run(config: ExperimentConfig, *, should_stop: Callable[[], bool] | None = None) -> Report:
    """Run both implementations and the referee; measure every tap. Pure: config in, report out.

    ``should_stop`` is asked before each affine layer; when it returns True the run stops
    there, frees what it allocated and raises Cancelled (nothing partial is returned).
    """
    started = time.perf_counter()
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
                local_b = pre_b if i == 0 else net_b.step(i, to_native(impl_b, input_a))[0]
            pre_ref = referee.layer(i, h_ref) if h_ref is not None else None
            weight, bias = params[i][0].to(dtype), net_a.layers[i].bias
            magnitude_a = _magnitude_sum(input_a, weight, bias)
            sides_exact = None
            if pre_ref is not None:
                # Each side against the exact result for its own input: at layer 1 both
                # inputs are x, whose exact result is the referee's own.
                if i == 0:
                    sides_exact = (SideExact(pre_ref, magnitude_a),
                                   SideExact(pre_ref, magnitude_a))
                else:
                    sides_exact = (SideExact(referee.exact_layer(i, input_a), magnitude_a),
                                   SideExact(referee.exact_layer(i, input_b),
                                             _magnitude_sum(input_b, weight, bias)))
            pre_a_bsc, pre_b_bsc = from_native(impl_a, pre_a), from_native(impl_b, pre_b)
            fits = None
            if sides_exact is not None:
                # Candidates' errors depend only on the input: at layer 1 both sides share it.
                shared: dict | None = {} if i == 0 else None
                fits = tuple(
                    _effective_fit(x_side, out, exact, referee, weight, bias, config.dtype,
                                   shared)
                    for x_side, out, exact in ((input_a, pre_a_bsc, sides_exact[0]),
                                               (input_b, pre_b_bsc, sides_exact[1])))
            taps.append(_tap_metrics(
                config, i + 1, "pre", params[i][0].shape[1], pre_a_bsc, pre_b_bsc,
                referee, pre_ref, local_b=from_native(impl_b, local_b),
                magnitude_sum=magnitude_a, sides_exact=sides_exact, fits=fits))
            del sides_exact, magnitude_a
            if i == last:
                logits_a, logits_b = pre_a_bsc, pre_b_bsc
                logits_ref = pre_ref
                break
            h_a, h_b = post_a, post_b
            h_ref = referee.activate(pre_ref) if pre_ref is not None else None
            feats_a, feats_b = from_native(impl_a, h_a), from_native(impl_b, h_b)
            taps.append(_tap_metrics(config, i + 1, "post", params[i][0].shape[1],
                                     feats_a, feats_b, referee, h_ref,
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
        environment = _environment(config, device, flags, referee, bf16_honoured)
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
        finite_taps=len(finite_taps),
        finite_max_abs_diff=_max(t.max_abs_diff for t in finite_taps),
        finite_max_rel_diff=_max(t.max_rel_diff for t in finite_taps),
        finite_max_ulp_diff=_max(t.max_ulp_diff for t in finite_taps),
    )


def _environment(config: ExperimentConfig, device: torch.device, flags: dict,
                 referee: Referee, bf16_honoured: dict | None = None) -> dict:
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
    }
