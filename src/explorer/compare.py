"""compare.run(config) -> Report: both networks and the referee, layer by layer.

The three networks advance in lockstep, one affine layer at a time, and each tap is
measured and then dropped, so memory holds one layer's activations, not the whole network's.
Each implementation still runs its own kernels on its own native layout from start to end:
stepping layer by layer does not change a single operation it performs.
"""

from __future__ import annotations

import math
import platform
import time

import numpy as np
import torch

from explorer import allocator, metrics, tapstats
from explorer.config import ExperimentConfig
from explorer.devices import device_name, resolve_device
from explorer.models import Network, from_native, make_input_and_parameters, to_native
from explorer.precision import TORCH_DTYPES, UNIT_ROUNDOFF, gamma, torch_state
from explorer.reference import Referee
from explorer.report import Report, Summary, TapMetrics
from explorer.verdict import judge

# Report.outputs keeps at most this many rows of logits (all metrics use every row).
OUTPUT_ROWS = 1024
HISTOGRAM_BITS = tapstats.HISTOGRAM_BITS


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def _closer(a_err: float | None, b_err: float | None) -> str | None:
    if a_err is None or b_err is None or math.isnan(a_err) or math.isnan(b_err):
        return None
    if a_err == b_err:
        return "tie"
    return "a" if a_err < b_err else "b"


def _tap_metrics(config: ExperimentConfig, layer: int, stage: str, fan_in: int,
                 a: torch.Tensor, b: torch.Tensor, referee: Referee, reference,
                 engine: str, local_b: torch.Tensor | None = None,
                 magnitude_sum: torch.Tensor | None = None) -> TapMetrics:
    """All metrics of one tap. a, b, local_b: (B, S, C) in the compute dtype.

    magnitude_sum is |W||x| + |b| in float64 for pre taps (x = A's input to this layer).
    The per-element metrics and their statistics are one program (tapstats.tap_program),
    evaluated by the chosen engine in one pass over the tap.
    """
    dtype = TORCH_DTYPES[config.dtype]
    local = local_b is not None and magnitude_sum is not None
    inputs: dict[str, torch.Tensor] = {"a": a, "b": b}
    reference_kind = None
    if referee.available:
        if referee.longdouble:
            # Errors against the extended-precision referee are computed in longdouble.
            reference_kind = "given"
            inputs.update(reference=referee.as_float64(reference),
                          a_err_given=referee.error_of(a, reference),
                          b_err_given=referee.error_of(b, reference))
        else:
            reference_kind = "float64"
            inputs["reference"] = referee.as_float64(reference)
    g = gamma(fan_in + 1, UNIT_ROUNDOFF[config.dtype])
    if local:
        inputs.update(local_b=local_b, magnitude_sum=magnitude_sum)
    program = tapstats.tap_program(config.dtype, reference=reference_kind, local=local,
                                   gamma=g)
    st = tapstats.evaluate(program, inputs, engine)
    abs_a, abs_b, diff = st["abs_a"], st["abs_b"], st["diff"]
    nonfinite_a = abs_a.nan_count + abs_a.inf_count
    nonfinite_b = abs_b.nan_count + abs_b.inf_count
    # assert_close(B, A): passes when no element fails and none is NaN; the tolerances it
    # would have needed are NaN when a NaN is present.
    has_nan = diff.nan_count > 0
    passes = st["tol_fail"].max == 0.0 and not has_nan
    needed_atol = math.nan if has_nan else diff.max
    needed_rtol = math.nan if has_nan else st["tol_rtol"].max

    ref_fields: dict[str, float | None] = dict.fromkeys(
        ("ref_max_abs_value", "a_max", "a_mean", "a_median", "b_max", "b_mean", "b_median"))
    if reference_kind is not None:
        err_a, err_b = st["a_err"], st["b_err"]
        ref_fields.update(
            ref_max_abs_value=st["abs_ref"].max,
            a_max=err_a.max, a_mean=err_a.mean, a_median=err_a.median,
            b_max=err_b.max, b_mean=err_b.mean, b_median=err_b.median)

    local_fields: dict[str, float | None] = dict.fromkeys(
        ("abs", "rel", "ulp", "bound", "ratio", "ratio_p99", "cond_max", "cond_median"))
    if local:
        ratio, condition = st["bound_ratio"], st["condition"]
        local_fields.update(abs=st["local_diff"].max, rel=st["local_rel"].max,
                            ulp=st["local_ulp"].max, bound=st["bound"].max,
                            ratio=ratio.max, ratio_p99=ratio.p99,
                            cond_max=condition.max, cond_median=condition.median)

    return TapMetrics(
        layer=layer, stage=stage, width=int(a.shape[-1]), fan_in=fan_in,
        max_abs_diff=diff.max, mean_abs_diff=diff.mean, median_abs_diff=diff.median,
        p99_abs_diff=diff.p99,
        max_rel_diff=st["rel"].max, mean_rel_diff=st["rel"].mean,
        median_rel_diff=st["rel"].median, p99_rel_diff=st["rel"].p99,
        max_ulp_diff=st["ulp"].max, mean_ulp_diff=st["ulp"].mean,
        median_ulp_diff=st["ulp"].median, p99_ulp_diff=st["ulp"].p99,
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
        closer_to_ref=_closer(ref_fields["a_mean"], ref_fields["b_mean"]),
        local_max_abs_diff=local_fields["abs"], local_max_rel_diff=local_fields["rel"],
        local_max_ulp_diff=local_fields["ulp"], bound_max=local_fields["bound"],
        bound_ratio=local_fields["ratio"], bound_ratio_p99=local_fields["ratio_p99"],
        condition_max=local_fields["cond_max"], condition_median=local_fields["cond_median"],
        assert_close_passes=passes, needed_atol=needed_atol, needed_rtol=needed_rtol,
        bits_histogram=st["bits"].histogram,
    )


def _magnitude_sum(x_bsc: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
                   ) -> torch.Tensor:
    """|W||x| + |b| in float64: the scale every rounding error of the layer is measured in."""
    return metrics.upcast(x_bsc).abs() @ metrics.upcast(weight).abs().T \
        + metrics.upcast(bias).abs()


def run(config: ExperimentConfig) -> Report:
    """Run both implementations and the referee; measure every tap. Pure: config in, report out."""
    started = time.perf_counter()
    allocator.tune()  # reuse freed temporaries instead of page-faulting fresh ones
    device = resolve_device(config.device)
    dtype = TORCH_DTYPES[config.dtype]
    if device.type == "mps" and dtype == torch.float64:
        raise ValueError("dtype='float64' is not available on mps: Apple GPUs have no "
                         "float64. Use dtype=float32, or device=cpu for float64.")
    x, params = make_input_and_parameters(config)
    # Every tap's elements: one pre tap per layer and a post tap per hidden layer.
    tap_elements = config.rows * (2 * sum(config.hidden_widths) + config.num_classes)
    engine = tapstats.choose_engine(tap_elements)
    on_cuda = device.type == "cuda"
    impl_a, impl_b = config.impl_a, config.impl_b
    with torch_state(
        threads=config.threads,
        conv_tf32=config.conv_tf32 if on_cuda else "default",
        matmul_tf32=config.matmul_tf32 if on_cuda else "default",
        cudnn_deterministic=config.cudnn_deterministic if on_cuda else None,
        cudnn_benchmark=config.cudnn_benchmark if on_cuda else None,
    ) as flags, torch.inference_mode():
        net_a = Network(impl_a, params, config.activation, device, dtype, config.emulate_a)
        net_b = Network(impl_b, params, config.activation, device, dtype, config.emulate_b)
        referee = Referee(params, config.activation, dtype, config.rows)
        x_device = x.to(device=device, dtype=dtype)
        h_a, h_b = to_native(impl_a, x_device), to_native(impl_b, x_device)
        h_ref = referee.start(x, dtype) if referee.available else None
        taps: list[TapMetrics] = []
        last = len(net_a) - 1
        feats_a = feats_b = x_device
        for i in range(len(net_a)):
            input_a = from_native(impl_a, h_a)  # (B, S, fan_in): A's input to this layer
            pre_a, pre_b = net_a.layers[i](h_a), net_b.layers[i](h_b)
            # Local: B's layer on A's input, so only this layer's rounding differs.
            local_b = pre_b if i == 0 else net_b.layers[i](to_native(impl_b, input_a))
            pre_ref = referee.layer(i, h_ref) if h_ref is not None else None
            bias = net_a.layers[i].bias
            taps.append(_tap_metrics(
                config, i + 1, "pre", params[i][0].shape[1],
                from_native(impl_a, pre_a), from_native(impl_b, pre_b), referee, pre_ref,
                engine, local_b=from_native(impl_b, local_b),
                magnitude_sum=_magnitude_sum(input_a, params[i][0].to(dtype), bias)))
            if i == last:
                logits_a, logits_b = from_native(impl_a, pre_a), from_native(impl_b, pre_b)
                logits_ref = pre_ref
                break
            h_a, h_b = net_a.activation(pre_a), net_b.activation(pre_b)
            h_ref = referee.activate(pre_ref) if pre_ref is not None else None
            feats_a, feats_b = from_native(impl_a, h_a), from_native(impl_b, h_b)
            taps.append(_tap_metrics(config, i + 1, "post", params[i][0].shape[1],
                                     feats_a, feats_b, referee, h_ref, engine))
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
        environment = _environment(config, device, flags, referee, engine)

    summary = _summarize(taps, logits_mean_diff, feats_sum_diff)
    verdict = judge(config, taps, summary, referee.info)
    return Report(config=config, environment=environment, taps=tuple(taps), summary=summary,
                  verdict=verdict, outputs=outputs,
                  elapsed_seconds=time.perf_counter() - started)


def _max(values) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return max(kept) if kept else None


def _summarize(taps: list[TapMetrics], logits_mean_diff: float, feats_sum_diff: float
               ) -> Summary:
    logits = taps[-1]
    first_bad = next((t.layer for t in taps if t.nonfinite_count or t.b_nonfinite_count), None)
    return Summary(
        logits_mean_diff=logits_mean_diff,
        feats_sum_diff=feats_sum_diff,
        max_abs_diff=_max(t.max_abs_diff for t in taps) or 0.0,
        max_rel_diff=_max(t.max_rel_diff for t in taps) or 0.0,
        max_ulp_diff=_max(t.max_ulp_diff for t in taps) or 0.0,
        max_bits=_max(t.max_bits for t in taps) or 0.0,
        logits_max_abs_diff=logits.max_abs_diff,
        logits_max_rel_diff=logits.max_rel_diff,
        max_bound_ratio=_max(t.bound_ratio for t in taps if t.stage == "pre"),
        closer_to_ref=logits.closer_to_ref,
        a_logits_max_rel_err_vs_ref=logits.a_max_rel_err_vs_ref,
        b_logits_max_rel_err_vs_ref=logits.b_max_rel_err_vs_ref,
        max_condition=_max(t.condition_max for t in taps if t.stage == "pre"),
        nonfinite_a=sum(t.nonfinite_count for t in taps),
        nonfinite_b=sum(t.b_nonfinite_count for t in taps),
        first_nonfinite_layer=first_bad,
    )


def _environment(config: ExperimentConfig, device: torch.device, flags: dict,
                 referee: Referee, engine: str) -> dict:
    cpu_capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")()
    return {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(device),
        "dtype": config.dtype,
        "threads": int(flags["threads"]),
        "cpu_capability": cpu_capability,
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        # CUDA switches only act on CUDA devices; shown as in effect during the run.
        "backend_flags": {k: v for k, v in flags.items() if k != "threads"},
        "backend_flags_apply": device.type == "cuda",
        "referee": referee.info.precision,
        "referee_note": referee.info.note,
        # Which engine computed the per-tap statistics (the numbers are the same either
        # way; see explorer.tapstats) and why.
        "metrics_engine": engine,
        "metrics_engine_note": tapstats.engine_note(),
    }
