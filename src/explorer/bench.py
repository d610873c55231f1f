"""The speed benchmark: every target of issue 13 measured in one run, as a table and JSON.

    python -m explorer.bench                 # everything (several minutes on 2 cores)
    python -m explorer.bench --tiny          # tiny sizes, no browser: seconds (CI)
    python -m explorer.bench --format json   # JSON only
    python -m explorer.bench --only compare,sweep   # a subset (names below)

The *honest floor* (benchmarks/floor.py) is the work the method cannot avoid: A's and B's
layers, the float64 referee, B's layer on A's input, |x||W|^T + |b|, each side's exact
result for its own input and |x_B||W|^T + |b| (the per-side bound ratios), and one read of
every array a tap's metrics read. Figures (each says target, measured, met):

compare   full comparison time / floor time, in one warm process, alternating the two:
          seed preset (target <= 2x) and a large config (realistic preset, depth 8, width
          1024, 4096 rows; target <= 1.3x). Also the large config as whole processes (the
          CLI against ``benchmarks/floor.py --once``, imports and all; target <= 1.3x).
          The notes give the ratio to the bare three forwards too.
scaling   time with depth (2, 4, 8, 16) and with rows (1024 ... 8192); target: linear, i.e.
          time ~ size^k with k <= 1.15 between the smallest and the largest size.
memory    peak resident memory of one run above the resident memory before it (a fresh
          subprocess per measurement, /proc VmHWM), in units of one float32 layer (rows x
          widest width x 4 bytes) after taking off the parameters (every network's copy);
          target <= 12.
sweep     a 10 x 10 sweep at seed size, empty cache, kernels loaded; target <= 1 s.
app       warm rerun of the app after one control change, server side (streamlit AppTest);
          target <= 150 ms.
browser   cold start to the first chart in headless Chromium (server start to chart);
          target <= 8 s. Skipped with --tiny.

Timings are medians of repeats; on a shared machine they move with the load (the JSON
records the load average before and after). The large config needs more than the default
per-run budget, so this process raises EXPLORER_MAX_FLOPS / EXPLORER_MAX_BYTES for itself.
The environment says which metric engine ran (numba or the torch fallback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from explorer.devserver import CHROMIUM_ARGS, streamlit_server

SECTIONS = ("compare", "scaling", "memory", "sweep", "app", "browser")
BENCH_MAX_FLOPS = "1e13"
BENCH_MAX_BYTES = str(16 * 2**30)
# Linear growth: time ~ size^k with k <= 1.15 fitted from the smallest to the largest size
# (one noisy step cannot fail it; a quadratic cost would show k near 2).
LINEAR_EXPONENT_LIMIT = 1.15


@dataclass
class Figure:
    name: str
    target: str  # in words, e.g. "<= 1.5x"
    measured: float | None  # None when skipped
    unit: str
    met: bool | None  # None when skipped
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------
# Configs

def _configs(tiny: bool) -> dict[str, Any]:
    from explorer.config import ExperimentConfig, preset

    if tiny:
        return {
            "seed": preset("seed"),
            "large": ExperimentConfig(activation="gelu", init_scheme="torch_default", depth=2,
                                      widths=(32, 32), input_dim=32, batch=64, samples=1),
            "depth_sizes": (1, 2, 4, 8), "rows_sizes": (16, 32, 64, 128),
            "scaling_base": ExperimentConfig(activation="gelu", init_scheme="torch_default",
                                             depth=2, widths=(16, 16), input_dim=16,
                                             batch=32, samples=1),
            "sweep": ("impls=linear/conv2d,linear/conv1d,linear/matmul",
                      "init-constant=1e-3:1:3"),
            "repeats": 3,
        }
    return {
        "seed": preset("seed"),
        "large": preset("realistic", depth=8, widths=(1024,) * 8, batch=4096, samples=1),
        "depth_sizes": (2, 4, 8, 16), "rows_sizes": (1024, 2048, 4096, 8192),
        "scaling_base": preset("realistic", depth=4, widths=(256,) * 4, batch=2048,
                               samples=1),
        "sweep": ("impls=all", "init-constant=1e-4:10:10"),
        "repeats": 15,
    }


# ---------------------------------------------------------------------------------------
# (a) comparison vs the three forwards

def forwards_only(config) -> None:
    """The unavoidable work: A, B and the float64 reference, each run once, no metrics."""
    import torch

    from explorer.devices import resolve_device
    from explorer.models import Network, make_input_and_parameters
    from explorer.precision import TORCH_DTYPES
    from explorer.reference import Referee

    device = resolve_device(config.device)
    dtype = TORCH_DTYPES[config.dtype]
    x, params = make_input_and_parameters(config)
    with torch.inference_mode():
        x_device = x.to(device=device, dtype=dtype)
        for impl, emulation in ((config.impl_a, config.emulate_a),
                                (config.impl_b, config.emulate_b)):
            Network(impl, params, config.activation, device, dtype, emulation).forward(x_device)
        referee = Referee(params, config.activation, dtype, config.rows)
        if referee.available:
            h = referee.start(x, dtype)
            for i in range(len(params)):
                h = referee.layer(i, h)
                if i < len(params) - 1:
                    h = referee.activate(h)


def _floor_module():
    """benchmarks/floor.py, loaded from the checkout (it is a script, not package code)."""
    import importlib.util

    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        path = root / "benchmarks" / "floor.py"
        if path.exists():
            spec = importlib.util.spec_from_file_location("explorer_bench_floor", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            return module
    return None


COMPARE_TARGETS = {"seed": 2.0, "large": 1.3}


def _warm_kernels() -> None:
    """Load the numba kernels first, as a server does at start (explorer.serving), so a
    seed-size run takes the engine the app's runs take; the CLI loads them only for large
    runs, so its small runs use the torch fallback."""
    from explorer import tapstats

    if tapstats.engine_setting() != "torch" and tapstats.numba_available():
        tapstats.load_kernels()


def bench_compare(cfgs: dict[str, Any]) -> list[Figure]:
    from explorer.compare import run

    _warm_kernels()
    floor = _floor_module()
    if floor is None:
        return [Figure(f"compare_{label}", f"<= {COMPARE_TARGETS[label]}x the honest floor",
                       None, "x", None, "skipped: benchmarks/floor.py not present")
                for label in ("seed", "large")]
    figures = []
    for label in ("seed", "large"):
        config = cfgs[label]
        repeats = cfgs["repeats"] if label == "seed" or cfgs["repeats"] < 5 else 3
        report = run(config)  # warm: first-call costs (kernels, oneDNN primitives) are not
        floor.floor_work(config)  # the run's
        forwards_only(config)
        # Alternate so both see the same load on a shared machine.
        full_times, floor_times, forward_times = [], [], []
        for _ in range(repeats):
            floor_times.append(_median_time(lambda c=config: floor.floor_work(c), 1))
            full_times.append(_median_time(lambda c=config: run(c), 1))
            forward_times.append(_median_time(lambda c=config: forwards_only(c), 1))
        full, floor_s, forwards = (statistics.median(t) for t in
                                   (full_times, floor_times, forward_times))
        ratio = full / floor_s
        target = COMPARE_TARGETS[label]
        figures.append(Figure(
            f"compare_{label}", f"<= {target}x the honest floor", round(ratio, 2), "x",
            ratio <= target,
            f"full {full * 1e3:.1f} ms vs floor {floor_s * 1e3:.1f} ms; {full / forwards:.1f}x "
            f"the three forwards ({forwards * 1e3:.1f} ms); {config.rows} rows, layers "
            f"{'-'.join(map(str, config.layer_sizes))}; engine "
            f"{report.environment.get('metrics_engine', '?')}",
            {"full_seconds": full, "floor_seconds": floor_s, "forwards_seconds": forwards,
             "repeats": repeats, "engine": report.environment.get("metrics_engine")}))
    figures.append(_compare_process(cfgs["large"], floor_repeats=1 if cfgs["repeats"] < 5
                                    else 3))
    return figures


def _cli_args(config) -> list[str]:
    """The flags both the explorer CLI and benchmarks/floor.py take for this config."""
    return ["--activation", config.activation, "--init-scheme", config.init_scheme,
            "--input-dim", str(config.input_dim), "--depth", str(config.depth),
            "--widths", ",".join(map(str, config.hidden_widths)),
            "--batch", str(config.batch), "--samples", str(config.samples)]


def _compare_process(config, floor_repeats: int) -> Figure:
    """The large config as whole processes: the CLI run against the floor script run once."""
    name, target = "compare_large_process", "<= 1.3x the floor, whole processes"
    root = find_app()
    if root is None or not (root.parent / "benchmarks" / "floor.py").exists():
        return Figure(name, target, None, "x", None, "skipped: benchmarks/floor.py not present")
    floor_script = root.parent / "benchmarks" / "floor.py"
    env = {**os.environ}
    commands = {
        "full": [sys.executable, "-m", "explorer", "compare", *_cli_args(config),
                 "--format", "json"],
        "floor": [sys.executable, str(floor_script), "--once", *_cli_args(config)],
    }
    times: dict[str, list[float]] = {"full": [], "floor": []}
    for _ in range(floor_repeats):
        for key, command in commands.items():
            started = time.perf_counter()
            out = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=env)
            if out.returncode != 0:
                return Figure(name, target, None, "x", None,
                              f"{key} process failed: {out.stderr.strip()[-300:]}")
            times[key].append(time.perf_counter() - started)
    full, floor_s = statistics.median(times["full"]), statistics.median(times["floor"])
    ratio = full / floor_s
    return Figure(name, target, round(ratio, 2), "x", ratio <= 1.3,
                  f"CLI {full:.2f} s vs floor script {floor_s:.2f} s, each a fresh process "
                  "(imports, kernel load from numba's cache, the run)",
                  {"full_seconds": full, "floor_seconds": floor_s})


# ---------------------------------------------------------------------------------------
# (b) scaling

def bench_scaling(cfgs: dict[str, Any]) -> list[Figure]:
    from explorer.compare import run

    base = cfgs["scaling_base"]
    width = base.widths[0]
    repeats = 3
    figures = []
    for axis, sizes in (("depth", cfgs["depth_sizes"]), ("rows", cfgs["rows_sizes"])):
        points = []
        for size in sizes:
            config = (base.replace(depth=size, widths=(width,) * size) if axis == "depth"
                      else base.replace(batch=size, samples=1))
            run(config)
            seconds = _median_time(lambda c=config: run(c), repeats)
            points.append({"size": size, "seconds": seconds, "seconds_per_unit": seconds / size})
        growth = [b["seconds"] / a["seconds"] for a, b in zip(points, points[1:])]
        unit = "layer" if axis == "depth" else "row"
        first, last = points[0], points[-1]
        exponent = (math.log(last["seconds"] / first["seconds"])
                    / math.log(last["size"] / first["size"]))
        figures.append(Figure(
            f"scaling_{axis}", f"linear: time ~ size^k, k <= {LINEAR_EXPONENT_LIMIT}",
            round(exponent, 2), "k", exponent <= LINEAR_EXPONENT_LIMIT,
            ", ".join(f"{p['size']}: {p['seconds'] * 1e3:.0f} ms "
                      f"({p['seconds_per_unit'] * 1e3:.2f} ms/{unit})" for p in points),
            {"points": points, "growth_per_doubling": growth}))
    return figures


# ---------------------------------------------------------------------------------------
# (c) memory

_MEMORY_SCRIPT = r"""
import json, sys
from explorer.config import ExperimentConfig
from explorer.compare import run

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None

values = json.loads(sys.argv[1])
values["widths"] = tuple(values["widths"])
config = ExperimentConfig(**values)
# "first": a one-row run of the small default network pays for imports and kernels (not
# this network: its parameters would already be resident before the measurement), then the
# run is measured as a server meets a new config (allocator tuned). "steady": the same config runs
# once first, with glibc's defaults (EXPLORER_KEEP_MALLOC=1) so freed memory goes back to
# the system, then the second run shows what one run needs once per-process buffers exist.
mode = sys.argv[2]
from explorer import tapstats
if tapstats.engine_setting() != "torch" and tapstats.numba_available():
    tapstats.load_kernels()  # a one-off per process, like the imports: not the run's memory
run(ExperimentConfig(batch=1, samples=1, dtype=config.dtype) if mode == "first" else config)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
before = status("VmRSS")
report = run(config)
print(json.dumps({"rss_before": before, "peak": status("VmHWM"), "peak_reset": reset,
                  "engine": report.environment.get("metrics_engine")}))
"""


def network_bytes(config) -> dict[str, int]:
    """Parameters and activations of A, B (compute dtype) and the reference (float64)."""
    from explorer.limits import DTYPE_BYTES

    sizes = config.layer_sizes
    per_element = 2 * DTYPE_BYTES[config.dtype] + 8
    parameters = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    activations = config.rows * (sum(sizes[1:]) * 2 - sizes[-1])  # pre and post taps
    widest_step = config.rows * max(i + o for i, o in zip(sizes[:-1], sizes[1:]))
    return {"parameters": parameters * per_element, "activations": activations * per_element,
            "one_layer_at_a_time": (parameters + widest_step) * per_element,
            # Every copy of the parameters a run holds: the float64 master, A's and B's in
            # the compute dtype, the referee's in float64.
            "parameter_copies": parameters * (per_element + 8),
            "float32_layer": config.rows * max(sizes) * 4}


MEMORY_TARGET_LAYERS = 12


def bench_memory(cfgs: dict[str, Any]) -> list[Figure]:
    figures = []
    target = f"<= {MEMORY_TARGET_LAYERS} float32 layers + parameters"
    if not Path("/proc/self/status").exists():
        return [Figure("memory", target, None, "layers", None,
                       "skipped: needs Linux /proc to read peak memory")]
    for label in ("seed", "large"):
        config = cfgs[label]
        measured: dict[str, dict] = {}
        for mode in ("first", "steady"):
            env = {**os.environ, **({"EXPLORER_KEEP_MALLOC": "1"} if mode == "steady" else {})}
            out = subprocess.run(
                [sys.executable, "-c", _MEMORY_SCRIPT, json.dumps(config.to_dict()), mode],
                capture_output=True, text=True, timeout=1800, env=env)
            if out.returncode != 0:
                break
            measured[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        if len(measured) < 2:
            figures.append(Figure(f"memory_{label}", target, None, "layers", None,
                                  f"measurement failed: {out.stderr.strip()[-300:]}"))
            continue
        data = measured["first"]
        used = max(data["peak"] - data["rss_before"], 0)
        steady = max(measured["steady"]["peak"] - measured["steady"]["rss_before"], 0)
        need = network_bytes(config)
        # At seed size one layer is 80 KB and the first run's one-off buffers (allocator
        # arenas, kernel scratch) are megabytes: judge it by the steady state. At the large
        # size the first run, as a server meets a new config, is the figure.
        judged = steady if label == "seed" else used
        layers = max(judged - need["parameter_copies"], 0) / need["float32_layer"]
        figures.append(Figure(
            f"memory_{label}", target, round(layers, 1), "layers",
            layers <= MEMORY_TARGET_LAYERS,
            f"{'steady state' if label == 'seed' else 'first run of the config'}: "
            f"{judged / 2**20:.1f} MB above start (first run {used / 2**20:.1f} MB, steady "
            f"{steady / 2**20:.1f} MB); parameters {need['parameter_copies'] / 2**20:.1f} MB, "
            f"one float32 layer {need['float32_layer'] / 2**20:.1f} MB; engine "
            f"{data.get('engine', '?')}",
            {"peak_bytes_above_start": used, "steady_peak_bytes": steady,
             "peak_reset": data["peak_reset"], **need}))
    return figures


# ---------------------------------------------------------------------------------------
# (d) sweep

def bench_sweep(cfgs: dict[str, Any]) -> list[Figure]:
    from explorer import sweep as sw

    x_spec, y_spec = cfgs["sweep"]
    _warm_kernels()
    sw.CACHE.clear()
    started = time.perf_counter()
    result = sw.sweep(cfgs["seed"], x_spec, y_spec)
    seconds = time.perf_counter() - started
    sw.CACHE.clear()
    shape = f"{len(result.x.points)} x {len(result.y.points) if result.y else 1}"
    return [Figure(f"sweep_{shape.replace(' ', '')}", "<= 1 s at seed size", round(seconds, 2),
                   "s", seconds <= 1, f"{shape} cells ({x_spec} by {y_spec}), empty cache",
                   {"cells": result.total, "seconds": seconds})]


# ---------------------------------------------------------------------------------------
# (e) app warm rerun

def find_app() -> Path | None:
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / "app.py").exists():
            return root / "app.py"
    return None


def bench_app(cfgs: dict[str, Any]) -> list[Figure]:
    app = find_app()
    name, target = "app_warm_rerun", "<= 150 ms server side"
    if app is None:
        return [Figure(name, target, None, "ms", None, "skipped: app.py not present")]
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(app), default_timeout=300)
    at.run()
    if at.exception:
        return [Figure(name, target, None, "ms", None,
                       f"skipped: the app raised {at.exception[0].value[:200]}")]
    try:
        box = at.selectbox(key="ex.activation")
    except KeyError:
        return [Figure(name, target, None, "ms", None,
                       "skipped: no activation control (key ex.activation) on the first page")]
    times = []
    for value in ("sigmoid", "tanh", "relu", "gelu", "silu")[: 2 if cfgs["repeats"] < 5 else 5]:
        box.set_value(value)
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
        box = at.selectbox(key="ex.activation")
    ms = statistics.median(times) * 1e3
    return [Figure(name, target, round(ms, 1), "ms", ms <= 150,
                   "activation changed to a value not computed before (each rerun runs the "
                   "comparison and redraws every chart)",
                   {"rerun_ms": [t * 1e3 for t in times]})]


# ---------------------------------------------------------------------------------------
# (f) browser cold start

def bench_browser(cfgs: dict[str, Any]) -> list[Figure]:
    name, target = "browser_cold_start", "<= 8 s to the first chart"
    app = find_app()
    if app is None:
        return [Figure(name, target, None, "s", None, "skipped: app.py not present")]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return [Figure(name, target, None, "s", None, "skipped: playwright is not installed")]
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        return [Figure(name, target, None, "s", None, "skipped: chromium is not installed")]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        started = time.perf_counter()
        try:
            with streamlit_server(app) as server:
                healthy = server.healthy_seconds
                page.goto(server.base + "/")
                page.wait_for_selector(".js-plotly-plot", timeout=60_000)
                seconds = time.perf_counter() - started
        except RuntimeError as err:
            return [Figure(name, target, None, "s", False, str(err)[:200])]
        finally:
            browser.close()
    return [Figure(name, target, round(seconds, 2), "s", seconds <= 8,
                   f"server healthy after {healthy:.1f} s; first plotly chart at {seconds:.1f} s "
                   "(Chromium already open)", {"server_healthy_seconds": healthy})]


# ---------------------------------------------------------------------------------------

BENCHES: dict[str, Callable[[dict[str, Any]], list[Figure]]] = {
    "compare": bench_compare, "scaling": bench_scaling, "memory": bench_memory,
    "sweep": bench_sweep, "app": bench_app, "browser": bench_browser,
}


def run_bench(tiny: bool = False, only: Sequence[str] = SECTIONS,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the chosen sections; a dict ready for JSON (figures and environment).

    The per-run budget is raised for the large config while this runs (unless the
    environment already sets it) and restored afterwards.
    """
    raised = {name: value for name, value in (("EXPLORER_MAX_FLOPS", BENCH_MAX_FLOPS),
                                               ("EXPLORER_MAX_BYTES", BENCH_MAX_BYTES))
              if name not in os.environ}
    os.environ.update(raised)
    try:
        return _run_bench(tiny, only, log)
    finally:
        for name in raised:
            os.environ.pop(name, None)


def _run_bench(tiny: bool, only: Sequence[str], log: Callable[[str], None] | None
               ) -> dict[str, Any]:
    import torch

    cfgs = _configs(tiny)
    figures: list[Figure] = []
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    for section in only:
        if tiny and section == "browser":
            figures.append(Figure("browser_cold_start", "<= 8 s to the first chart", None, "s",
                                  None, "skipped in --tiny mode"))
            continue
        if log:
            log(f"measuring {section} ...")
        figures.extend(BENCHES[section](cfgs))
    from explorer import tapstats

    if tiny:  # a smoke test of every section: its "met" says nothing about the targets
        figures = [replace(f, note=f"tiny sizes, not a measurement of the target; {f.note}")
                   if f.measured is not None else f for f in figures]
    return {
        "tiny": tiny,
        "figures": [asdict(f) for f in figures],
        "all_met": all(f.met for f in figures if f.met is not None),
        "environment": {
            "metrics_engine_setting": tapstats.engine_setting(),
            "metrics_engine_note": tapstats.engine_note(),
            "torch_version": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "machine": platform.processor() or
            platform.machine(), "load_average_before": load_before,
            "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
    }


def format_table(result: dict[str, Any]) -> str:
    rows = [("figure", "target", "measured", "met", "note")]
    for f in result["figures"]:
        measured = "-" if f["measured"] is None else f"{f['measured']:g} {f['unit']}"
        met = "skipped" if f["met"] is None else ("yes" if f["met"] else "NO")
        rows.append((f["name"], f["target"], measured, met, f["note"]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(r[:4], widths)), r[4]]) for r in rows]
    env = result["environment"]
    lines.append(f"\ntorch {env['torch_version']}, {env['threads']} threads, "
                 f"{env['cpu_count']} CPUs, load average before {env['load_average_before']} "
                 f"after {env['load_average_after']}; metrics engine "
                 f"{env['metrics_engine_setting']} ({env['metrics_engine_note']})"
                 f"{' (tiny sizes)' if result['tiny'] else ''}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise ValueError(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m explorer.bench",
                     description="Measure the speed targets; print a table and JSON.")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes, no browser: seconds, for CI")
    parser.add_argument("--format", choices=("table", "json", "both"), default="both")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections: {', '.join(SECTIONS)}")
    try:
        args = parser.parse_args(argv)
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in only if s not in SECTIONS]
        if unknown or not only:
            raise ValueError(f"--only {args.only!r}: choose from {', '.join(SECTIONS)}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = run_bench(args.tiny, only, log=lambda m: print(m, file=sys.stderr))
    if args.format in ("table", "both"):
        print(format_table(result))
    if args.format in ("json", "both"):
        print(json.dumps(result, indent=2, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
