"""Measure peak RSS for every shape the memory fit uses, with tests/test_limits.py's own probes.

    python benchmarks/memory_refit/measure.py OUT.jsonl [--workers 2] [--reps 3] [--avx2]

Each run is a fresh process (a probe from tests/test_limits.py: warm-up run, kernels loaded,
every effective-bits candidate simulated, peak reset before the measured run). Jobs:
every non-float64 (shape, dtype, engine) of data.jsonl and data_samples.jsonl, --reps
processes each; and each memory test's case as its test measures it (5 processes for the
narrow/wide/wide-input cases, 4 for the CLI and first-run cases). With --avx2, only the
test cases, under ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 (CI's second pass).
Peak RSS does not depend on another process running, so two workers on two cores are
fine; timings from such a run mean nothing. 775 processes took 47 minutes here. Each line
of OUT has the fields of data.jsonl plus "file" (which data file the shape is from) and
"probe"; sort them into the data files before running refit.py.
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = pathlib.Path(__file__).resolve().parent
TESTS = HERE.parent.parent / "tests" / "test_limits.py"
CASES = [("T_narrow", dict(batch=4096, samples=8, depth=3, input_dim=64, widths=[32, 32, 32])),
         ("T_wide", dict(batch=512, samples=1, depth=3, widths=[1024, 1024, 1024])),
         ("T_wide_input", dict(batch=8192, samples=1, depth=1, input_dim=2048, widths=[16]))]
CLI_THIN = dict(depth=8, widths=[16] * 8, batch=8192, samples=4, input_dim=64)
FIRST = [("T_first_thin", dict(batch=45056, samples=1, depth=6, input_dim=32, widths=[16] * 6,
                               dtype="float16")),
         ("T_first_wide", dict(batch=1970, samples=1, depth=8, widths=[512] * 8,
                               dtype="bfloat16"))]


def probes(directory: pathlib.Path) -> dict[str, pathlib.Path]:
    """The memory tests' probe scripts, taken from the test file so they stay the same."""
    text = TESTS.read_text()
    helpers = re.search(r'_PROBE_HELPERS = r"""(.*?)"""', text, re.S).group(1)
    found = {}
    for name, variable in (("probe", "_PROBE"), ("probe_cold", "_COLD_PROBE"),
                           ("probe_first", "_FIRST_RUN_PROBE")):
        body = re.search(variable + r' = _PROBE_HELPERS \+ r"""(.*?)"""', text, re.S).group(1)
        found[name] = directory / f"{name}.py"
        found[name].write_text(helpers + body)
    return found


def jobs(reps: int, avx2: bool) -> list[dict]:
    out = []
    for rep in range(5):
        for name, cfg in CASES:
            for dtype in ("float32", "float16", "bfloat16"):
                out.append(dict(name=name, probe="probe", cfg=dict(cfg, dtype=dtype),
                                dtype=dtype, engine="default", rep=rep))
    for rep in range(4):
        for dtype in ("float16", "bfloat16"):
            out.append(dict(name="T_cli_thin", probe="probe_cold", cfg=dict(CLI_THIN, dtype=dtype),
                            dtype=dtype, engine="default", rep=rep))
        for name, cfg in FIRST:
            out.append(dict(name=name, probe="probe_first", cfg=cfg, dtype=cfg["dtype"],
                            engine="default", rep=rep))
    if avx2:
        return [dict(job, isa="AVX2") for job in out]
    shapes = {}
    for file in ("data.jsonl", "data_samples.jsonl"):
        for line in (HERE / file).open():
            run = json.loads(line)
            if run["dtype"] != "float64":
                key = (run["name"], json.dumps(run["cfg"], sort_keys=True), run["dtype"],
                       run["engine"])
                shapes[key] = dict(name=run["name"], file=file, probe="probe", cfg=run["cfg"],
                                   dtype=run["dtype"], engine=run["engine"],
                                   split=run.get("split"))
    out += [dict(job, rep=rep) for rep in range(reps) for job in shapes.values()]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--avx2", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "EXPLORER_MAX_BYTES": str(2**32), "EXPLORER_MAX_FLOPS": "1e13"}
    env.pop("EXPLORER_METRICS_ENGINE", None)
    if args.avx2:
        env.update(ONEDNN_MAX_CPU_ISA="AVX2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    todo = jobs(args.reps, args.avx2)
    print(f"{len(todo)} processes", flush=True)
    with tempfile.TemporaryDirectory() as directory, open(args.out, "a") as out:
        scripts = probes(pathlib.Path(directory))

        def one(job: dict) -> None:
            run_env = dict(env)
            if job["engine"] != "default":
                run_env["EXPLORER_METRICS_ENGINE"] = job["engine"]
            started = time.time()
            done = subprocess.run([sys.executable, str(scripts[job["probe"]]),
                                   json.dumps(job["cfg"])], capture_output=True, text=True,
                                  env=run_env, timeout=900)
            record = dict(job, secs=round(time.time() - started, 1))
            if done.returncode:
                record["error"] = done.stderr[-500:]
            else:
                record.update(json.loads(done.stdout.strip().splitlines()[-1]))
            out.write(json.dumps(record) + "\n")
            out.flush()

        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(one, todo))


if __name__ == "__main__":
    main()
