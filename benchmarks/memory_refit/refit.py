"""Fit limits.MemoryModel's coefficients to data.jsonl and data_samples.jsonl by linear
programming.

    python benchmarks/memory_refit/refit.py      # needs scipy (not in requirements.txt)

Per (engine, dtype): minimise t such that every measured shape's estimate is at most t x its
median peak, at least COVER (1.05) x its median and at least its largest peak, and, for
numba (what the memory tests measure, kernels loaded), each test case in
tests/test_limits.py sits inside the window that test needs, with and without the AVX2 cap
(hard_windows(), from test_cases.jsonl). data.jsonl has one sample per row throughout;
data_samples.jsonl (numba only) has one and eight, which cost differently in float32. torch
takes numba's multi-sample term: those copies are the networks', not the metric engine's.
Among the solutions with the least t, the one with the least summed ratio. The estimate is
the larger of the model and the input floor, so a shape the floor already covers gets no
lower bound. A model's estimate is the max over layers; the lower bound is placed on the
layer that attains it under the previous iterate (sufficient), the upper bound on every
layer (exact); that choice makes the problem non-convex, so it is solved from STARTS
starting points. Coefficients are rounded up to a tenth of a byte, then the windows are
checked again: OUTSIDE marks one the rounding broke by more than half a MB.
"""

import collections
import importlib.util
import json
import pathlib
import sys

import numpy as np
from runs import load_runs
from scipy.optimize import linprog

HERE = pathlib.Path(__file__).resolve().parent


def _project_limits():
    """src/explorer/limits.py alone (no torch, which this script's scipy environment may
    lack): its MemoryModel checks the features below, its input floor prices the runs."""
    spec = importlib.util.spec_from_file_location(
        "explorer_limits", HERE.parent.parent / "src" / "explorer" / "limits.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


limits = _project_limits()
MB = limits.MB
NARROW_WIDTH = limits.NARROW_WIDTH
STARTS = 40
# Runs of a few rows are priced by their parameters, whose cost moves little between
# processes: held to 1.25x, so wide networks are not refused rows they have room for.
FEW_ROWS, FEW_ROWS_MAX = 64, 1.25
NAMES = ["per_output_element", "per_input_element", "per_class_element",
         "per_network_input_element", "per_parameter", "per_largest_layer_parameter",
         "per_tap_element", "per_row", "per_narrow_row_element", "per_multi_sample_element",
         "per_sampled_output_element", "per_sampled_input_element", "per_later_layer_parameter"]

# Each memory test's case, measured as its test measures it (test_cases.jsonl), gives the
# window the run model must land in for that test to pass, in MB. The memory tests ask for
# at least the median of 5 processes and the largest / 1.1, at most 1.5x the median: taken
# from all measured processes (CI's too: its AVX2 pass once saw the narrow bfloat16 case at
# 132-156 MB where this machine had seen 123-149) as the upper quartile and 1.5x the lower
# one, so another 5 processes' median still passes. The CLI and first-run tests add a one-off
# price to the run's (the kernels' load, the first run's state) and ask for at least every
# measured total and at most 1.5x the smallest (CLI) or the median (first run).
MARGIN = 1.03  # each window narrowed by 3% at both ends: CI's processes are other processes
# Every run is priced at least this much above its median peak (and at or above its largest):
# 1.1 left the loosest shapes above 1.5x their median, on the fit's runs and on new ones.
COVER = 1.05
ONE_OFF = {"T_cli_thin": limits.KERNEL_LOAD_BYTES, "T_first_thin": limits.FIRST_RUN_BYTES,
           "T_first_wide": limits.FIRST_RUN_BYTES}


def hard_windows():
    """{dtype: [(sizes, rows, samples, lowest MB, highest MB)]} for numba's fits."""
    cases = collections.defaultdict(list)
    for line in (HERE / "test_cases.jsonl").open():
        run = json.loads(line)
        cfg = run["cfg"]
        sizes = (cfg.get("input_dim", 256), *cfg["widths"], cfg.get("num_classes", 4))
        cases[(run["name"], run["dtype"], sizes, cfg["batch"] * cfg["samples"],
               cfg["samples"], run.get("isa", "native"))].append(run["measured"] / MB)
    windows = {}
    for (name, dtype, sizes, rows, samples, _isa), peaks in sorted(cases.items()):
        one_off = ONE_OFF.get(name, 0) / MB
        low_q, high_q = np.percentile(peaks, [25, 75])
        if name in ONE_OFF:
            low = MARGIN * max(peaks) - one_off
            high = 1.5 * (min(peaks) if name == "T_cli_thin" else low_q) / MARGIN - one_off
        else:
            low = MARGIN * max(high_q, max(peaks) / 1.1)
            high = 1.5 * low_q / MARGIN
        if name == "T_wide_input":
            low = 0  # priced by the input floor, which the fit does not set
        # CI runs every test twice, the second time with the instruction set capped at
        # AVX2 (other kernels, other buffers): a window must hold for both.
        key = (dtype, sizes, rows, samples)
        old_low, old_high = windows.get(key, (0, float("inf")))
        windows[key] = (max(low, old_low), min(high, old_high))
    hard = collections.defaultdict(list)
    for (dtype, sizes, rows, samples), (low, high) in windows.items():
        hard[dtype].append((sizes, rows, samples, round(low, 1), round(high, 1)))
    return dict(hard)


HARD = hard_windows()


def features(sizes, rows, samples):
    """One row per layer: the model's terms if that layer's activations set the peak
    (MemoryModel.peak_bytes, linear in its coefficients; main() checks the two agree)."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    last = len(pairs) - 1
    per_layer = [n * m + m for n, m in pairs]
    shared = [sum(per_layer), max(per_layer), rows * sum(sizes[1:]), rows,
              rows * min(max(sizes[1:-1]), NARROW_WIDTH),
              rows * max(sizes[2:-1], default=0) * (samples > 1)]
    sampled = min(rows, limits.SAMPLED_ROWS)
    return np.array([[rows * m * (j < last), rows * n * (j > 0), rows * m * (j == last),
                      rows * n * (j == 0)] + shared
                     + [sampled * m, sampled * n, (n * m + m) * (j > 0)]
                     for j, (n, m) in enumerate(pairs)], float)


def floor(sizes, rows):
    return limits.input_floor_bytes(sizes, rows, "float32")  # 28 B in every fitted dtype


def estimate(sizes, rows, samples, theta):
    return max((features(sizes, rows, samples) @ theta).max(), floor(sizes, rows))


def fit(groups, hard, theta, iterations=8):
    n = len(NAMES)
    t = None
    for _ in range(iterations):
        rows_a, rows_b, ratios, lows = [], [], [], []
        for sizes, rows, samples, peaks in groups:
            feats, median = features(sizes, rows, samples), float(np.median(peaks))
            low = max(COVER * median, max(peaks))
            if floor(sizes, rows) < low:
                lows.append((feats, low))
            for f in feats:
                rows_a.append(list(f / median) + [-1])
                rows_b.append(0)
                if rows <= FEW_ROWS:  # the parameters' cost barely moves: price it closely
                    rows_a.append(list(f / median) + [0])
                    rows_b.append(FEW_ROWS_MAX)
            ratios.append(feats[int(np.argmax(feats @ theta))] / median)
        for sizes, rows, samples, low, high in hard:
            feats = features(sizes, rows, samples)
            if floor(sizes, rows) < low * MB:
                lows.append((feats, low * MB))
            for f in feats:
                rows_a.append(list(f) + [0])
                rows_b.append(high * MB)
        for feats, low in lows:
            rows_a.append(list(-feats[int(np.argmax(feats @ theta))]) + [0])
            rows_b.append(-low)
        a, b = np.array(rows_a), np.array(rows_b)
        bounds = [(0, None)] * (n + 1)
        least = linprog(np.r_[np.zeros(n), 1.0], A_ub=a, b_ub=b, bounds=bounds)
        if least.status:
            return None, None
        t = least.x[-1]
        tight = linprog(np.r_[np.sum(ratios, 0), 0.0], A_ub=np.vstack([a, np.r_[np.zeros(n), 1]]),
                        b_ub=np.r_[b, t + 0.005], bounds=bounds)
        new = tight.x[:n] if tight.status == 0 else least.x[:n]
        if np.allclose(new, theta, rtol=1e-7, atol=1e-7):
            break
        theta = new
    return np.ceil(10 * theta - 1e-6) / 10 + 0.0, t  # up to a tenth of a byte (no -0.0)


def main():
    peaks = collections.defaultdict(list)
    for (_, dtype, engine, sizes, rows, samples), measured in load_runs().items():
        if dtype != "float64":  # not fitted
            peaks[(engine, dtype, sizes, rows, samples)].extend(measured)
    multi_sample = {}
    for engine in ("numba", "torch"):
        for dtype in ("float32", "float16", "bfloat16"):
            groups = [(s, r, n, p) for (e, d, s, r, n), p in peaks.items()
                      if e == engine and d == dtype]
            hard = HARD.get(dtype, []) if engine == "numba" else []
            # The lower bounds' layer choice makes the problem non-convex: several starts.
            starts = [np.array([100, 10, 100, 10, 40, 40, 2, 100, 10, 10, 10, 10, 10], float),
                      *np.random.default_rng(0).uniform(0, 200, (STARTS - 1, len(NAMES)))]
            fits = [fit(groups, hard, start) for start in starts]
            fits = [(th, t) for th, t in fits if th is not None and all(
                estimate(s, r, n, th) <= (hi + 0.5) * MB for s, r, n, lo, hi in hard)]
            theta, t = min(fits, key=lambda f: max(estimate(s, r, n, f[0]) / np.median(p)
                                                   for s, r, n, p in groups),
                           default=(None, None))
            if theta is None:
                # Which window conflicts: the fit without each in turn.
                alone = [lo_hi for lo_hi in hard if any(
                    th is not None for th, _ in [fit(groups, [w for w in hard if w is not lo_hi],
                                                     starts[0])])]
                print(f"{engine} {dtype}: no model fits every window; fits without any of "
                      f"{[(w[0][:3], w[1], w[3], w[4]) for w in alone]}")
                continue
            term = NAMES.index("per_multi_sample_element")
            if engine == "numba":
                multi_sample[dtype] = theta[term]
            else:  # no multi-sample runs measured with torch's engine
                theta[term] = multi_sample.get(dtype, 0.0)
            over = [estimate(s, r, n, theta) / np.median(p) for s, r, n, p in groups]
            cover = [estimate(s, r, n, theta) / max(p) for s, r, n, p in groups]
            priced = [(estimate(s, r, n, theta) / MB, lo, hi) for s, r, n, lo, hi in hard]
            windows = " ".join(f"{mb:.0f} {'in' if lo <= mb <= hi + 0.5 else 'OUTSIDE'} "
                               f"[{lo}, {hi}]" for mb, lo, hi in priced)
            print(f"{engine} {dtype}: est/median {min(over):.2f}-{max(over):.2f}, "
                  f"min est/max {min(cover):.2f}; {windows}")
            c = dict(zip(NAMES, (float(v) for v in theta)))
            model = limits.MemoryModel(**c, fixed=0)
            for s, r, n, _ in groups:  # the features are the project's model, term by term
                assert abs(model.peak_bytes(s, r, n) - (features(s, r, n) @ theta).max()) < 1

            keywords = "".join(f", {name}={c[name]}" for name in NAMES[2:4] + NAMES[6:] if c[name])
            print(f'    "{dtype}": MemoryModel({c["per_output_element"]}, '
                  f'{c["per_input_element"]}, {c["per_parameter"]}, '
                  f'{c["per_largest_layer_parameter"]}, fixed=0{keywords}),')


if __name__ == "__main__":
    main()
