"""The measured runs of data.jsonl and data_samples.jsonl, for evaluate.py and refit.py."""

import collections
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
FILES = ("data.jsonl", "data_samples.jsonl")


def load_runs() -> dict[tuple, list[int]]:
    """Measured peaks (bytes) of each (name, dtype, engine, layer sizes, rows, samples)."""
    runs = collections.defaultdict(list)
    for name in FILES:
        for line in (HERE / name).open():
            run = json.loads(line)
            cfg = run["cfg"]
            sizes = (cfg.get("input_dim", 256), *cfg["widths"], cfg.get("num_classes", 4))
            runs[(run["name"], run["dtype"], run["engine"], sizes,
                  cfg["batch"] * cfg["samples"], cfg["samples"])].append(run["measured"])
    return runs
