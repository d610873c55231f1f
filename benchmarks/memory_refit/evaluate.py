"""Price every run in data.jsonl and data_samples.jsonl with a memory model and print how
loose it is.

    python benchmarks/memory_refit/evaluate.py [SRC_DIR] [-v]

SRC_DIR is a checkout's src/ (default: this one's), so a proposed limits.py can be compared
with the current one on the same measured runs (its estimate_for must take samples, as
from dd166d8 on). Per (engine, dtype): the smallest
estimate / largest measured peak (under 1 means under-estimated), the largest estimate /
median peak, and the same two for the budget, which prices a run with the larger of the
two engines' models. float64 runs are skipped (too few and bimodal to judge by). Then the
same for heldout.jsonl, shapes that were not fitted, measured with every candidate simulated
(what the fit prices) and as a plain run.
"""

import collections
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).resolve().parent
args = [a for a in sys.argv[1:] if a != "-v"]
sys.path.insert(0, args[0] if args else str(HERE.parent.parent / "src"))
sys.path.insert(0, str(HERE))
from runs import load_runs  # noqa: E402

from explorer import limits  # noqa: E402

MB = 2**20
ENGINES = ("numba", "torch")


def estimate(sizes, rows, samples, dtype, engine):
    # With an engine named, estimate_for prices the run alone (no kernel load, no
    # first-run state), as the runs here were measured.
    return limits.estimate_for(sizes, rows, dtype, engine=engine, samples=samples).bytes


runs = load_runs()

worst = collections.defaultdict(lambda: {"est/max": 9.0, "est/med": 0.0,
                                         "budget/max": 9.0, "budget/med": 0.0})
for (name, dtype, engine, sizes, rows, samples), peaks in sorted(runs.items()):
    if dtype == "float64":
        continue
    own = estimate(sizes, rows, samples, dtype, engine)
    budget = max(estimate(sizes, rows, samples, dtype, e) for e in ENGINES)
    median, top = statistics.median(peaks), max(peaks)
    w = worst[(engine, dtype)]
    w["est/max"] = min(w["est/max"], own / top)
    w["est/med"] = max(w["est/med"], own / median)
    w["budget/max"] = min(w["budget/max"], budget / top)
    w["budget/med"] = max(w["budget/med"], budget / median)
    if "-v" in sys.argv:
        print(f"{name:22s} {dtype:8s} {engine:5s} rows={rows:6d} samples={samples:2d} "
              f"peaks={[round(p / MB) for p in sorted(peaks)]} est={own / MB:.0f} MB "
              f"est/med={own / median:.2f} budget/med={budget / median:.2f}")
for (engine, dtype), w in sorted(worst.items()):
    print(f"{engine:5s} {dtype:8s} " + "  ".join(
        f"{'min' if k.endswith('max') else 'max'} {k} {v:.2f}" for k, v in w.items()))

# Shapes the fit never saw.
import json  # noqa: E402

held = collections.defaultdict(list)
for line in (HERE / "heldout.jsonl").open():
    run = json.loads(line)
    cfg = run["cfg"]
    sizes = (cfg["input_dim"], *cfg["widths"], cfg["num_classes"])
    held[(run["probe"], run["dtype"], run["name"], sizes, cfg["batch"] * cfg["samples"],
          cfg["samples"])].append(run["measured"])
held_worst = collections.defaultdict(lambda: [9.0, 9.0, 0.0])
for (probe, dtype, name, sizes, rows, samples), peaks in sorted(held.items()):
    own = estimate(sizes, rows, samples, dtype, "numba")
    w = held_worst[(probe, dtype)]
    w[0] = min(w[0], own / max(peaks))
    w[1] = min(w[1], own / statistics.median(peaks))
    w[2] = max(w[2], own / statistics.median(peaks))
    if "-v" in sys.argv:
        print(f"held out {probe:15s} {name} {dtype:8s} sizes={sizes} rows={rows} "
              f"samples={samples} peaks={[round(p / MB) for p in sorted(peaks)]} "
              f"est={own / MB:.0f} MB est/med={own / statistics.median(peaks):.2f}")
print(f"held out ({len(held) // 2} shape-dtypes, numba):")
for (probe, dtype), (cover, low, high) in sorted(held_worst.items()):
    print(f"  {probe:15s} {dtype:8s} min est/max {cover:.2f}  est/med {low:.2f}-{high:.2f}")
