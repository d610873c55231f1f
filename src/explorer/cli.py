"""python -m explorer compare [flags] --format {table,json,csv}
python -m explorer sweep --x NAME=VALUES [--y NAME=VALUES] [--metric M] [flags] --format ...

Every ExperimentConfig field has a flag (--init-constant for init_constant, ...); flags
override the preset (--preset seed by default). A bad flag or value prints one line that
says what was wrong and what is allowed, and exits with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Sequence

from explorer.config import (
    ACTIVATIONS,
    CPU_PRECISIONS,
    DTYPES,
    EMULATIONS,
    IMPLEMENTATIONS,
    INIT_SCHEMES,
    INPUTS,
    PRESETS,
    TRISTATE,
    ExperimentConfig,
    config_from_strings,
)

FORMATS = ("table", "json", "csv")

_CHOICES = {
    "activation": ACTIVATIONS, "init_scheme": INIT_SCHEMES, "dtype": DTYPES,
    "impl_a": IMPLEMENTATIONS, "impl_b": IMPLEMENTATIONS, "emulate_a": EMULATIONS,
    "emulate_b": EMULATIONS, "input_distribution": INPUTS, "conv_tf32": TRISTATE,
    "matmul_tf32": TRISTATE, "cpu_matmul_precision": CPU_PRECISIONS,
    "cpu_conv_precision": CPU_PRECISIONS,
}

_HELP = {
    "activation": "activation between layers",
    "init_scheme": "constant (all weights and biases = c, the forum), constant_zero_bias, "
                   "torch_default, normal (weights ~ N(0, c^2))",
    "init_constant": "the constant c (magnitude 1e-6..100)",
    "depth": "hidden layers (1..16)",
    "widths": "hidden widths, comma-separated, one per hidden layer (default 64,128,256,...)",
    "input_dim": "input features", "num_classes": "outputs of the last layer",
    "batch": "batch size B", "samples": "samples S per batch element: rows = B*S",
    "seed": "seed for the input (and random inits)",
    "input_distribution": "normal (the forum) or integers in -4..4",
    "device": "cpu, cuda, cuda:N or mps", "dtype": "compute dtype",
    "impl_a": "implementation A", "impl_b": "implementation B",
    "emulate_a": "round A's operands (each layer's weights and input; biases stay "
                 "float32) to this format (float32 only)",
    "emulate_b": "round B's operands (each layer's weights and input; biases stay "
                 "float32) to this format (float32 only)",
    "conv_tf32": "CUDA only: TF32 for cuDNN convolutions",
    "matmul_tf32": "CUDA only: TF32 for matmuls",
    "cudnn_deterministic": "CUDA only: true/false", "cudnn_benchmark": "CUDA only: true/false",
    "threads": "CPU threads for both sides (0 = the process default)",
    "rows_per_call_a": "A runs each layer in calls of N rows (0 = the whole batch in one call)",
    "rows_per_call_b": "B runs each layer in calls of N rows (0 = the whole batch); "
                       "--impl-b linear --rows-per-call-b 1 is the batch-invariance probe",
    "threads_a": "A's own CPU thread count (0 = --threads)",
    "threads_b": "B's own CPU thread count (0 = --threads)",
    "cpu_matmul_precision": "CPU only: oneDNN float32 precision for matmuls (Linear, matmul, "
                            "tensordot): default, ieee, bf16, tf32",
    "cpu_conv_precision": "CPU only: oneDNN float32 precision for 1x1 convolutions over a "
                          "batch of 2 or more: default, ieee, bf16, tf32",
}


class CliError(Exception):
    """A usage problem: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit
        raise CliError(message)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m explorer",
                     description="Why do two implementations of the same MLP differ?")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    compare = sub.add_parser("compare", help="compare two implementations layer by layer")
    _add_config_flags(compare)
    compare.add_argument("--format", default="table", choices=FORMATS)
    _add_sweep_parser(sub)
    return parser


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """--preset and one flag per ExperimentConfig field (shared by compare and sweep)."""
    parser.add_argument("--preset", default="seed", choices=tuple(PRESETS),
                        help="starting point; other flags override it (default: seed)")
    for field in dataclasses.fields(ExperimentConfig):
        kwargs: dict = {"default": None, "help": _HELP.get(field.name, "")}
        if field.name in _CHOICES:
            kwargs["choices"] = _CHOICES[field.name]
        parser.add_argument(_flag(field.name), dest=field.name, **kwargs)


def _add_sweep_parser(sub) -> None:
    from explorer.sweep import AXES, MAX_CELLS, METRICS

    sweep = sub.add_parser(
        "sweep", help="one metric over a grid of two settings",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run one comparison per cell of a grid over two settings and report one "
                    "metric per cell.\n\naxes (NAME=VALUES):\n"
                    + "\n".join(f"  {name:14s} {help_}" for name, (_, help_) in AXES.items())
                    + "\n\nmetrics:\n"
                    + "\n".join(f"  {name:28s} {help_}" for name, help_ in METRICS.items())
                    + f"\n\nAt most {MAX_CELLS} cells. Other flags set the base config.",
        epilog="example: python -m explorer sweep --x init-constant=1e-4:10:9 "
               "--y activation=elu,sigmoid,tanh --metric max_rel_diff --format csv")
    sweep.add_argument("--x", required=True, metavar="NAME=VALUES",
                       help="the x axis, e.g. init-constant=1e-4:10:9")
    sweep.add_argument("--y", default=None, metavar="NAME=VALUES",
                       help="the y axis, e.g. activation=elu,sigmoid,tanh (optional)")
    sweep.add_argument("--metric", default="max_rel_diff", choices=tuple(METRICS),
                       help="what each cell shows (default: max_rel_diff)")
    _add_config_flags(sweep)
    sweep.add_argument("--format", default="table", choices=FORMATS)


def _config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ExperimentConfig)
              if getattr(args, f.name) is not None}
    values["preset"] = args.preset
    return config_from_strings(values)


def _run_sweep(args: argparse.Namespace, config: ExperimentConfig) -> int:
    """Raises ValueError for bad axes (reported by main); prints the result."""
    import json

    from explorer.sweep import format_table as format_sweep
    from explorer.sweep import result_to_dict, sweep

    def progress(p) -> None:
        if sys.stderr.isatty():
            print(f"\r{p.describe()}", end="", file=sys.stderr, flush=True)

    result = sweep(config, args.x, args.y, args.metric, progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.format == "json":
        print(json.dumps(result_to_dict(result), indent=2, allow_nan=False))
    elif args.format == "csv":
        print(result.frame.to_csv(index=False), end="")
    else:
        print(format_sweep(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; the exit status (0, or 2 for a usage problem)."""
    try:
        status = _main(argv)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # The reader went away (`... | head`): nothing is wrong with the run, so no
        # traceback; stdout points at /dev/null so Python's exit flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None) -> int:
    from explorer.limits import setting_problems

    for problem in setting_problems():  # the default is used; say so, once, and go on
        print(f"warning: {problem}", file=sys.stderr)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            raise CliError("choose a command: compare or sweep "
                           "(python -m explorer compare --help)")
        config = _config_from_args(args)
        if args.command == "sweep":
            return _run_sweep(args, config)
        from explorer.compare import run

        report = run(config)
    except (CliError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(report.to_json())
    elif args.format == "csv":
        print(report.to_frame().to_csv(index=False), end="")
    else:
        print(format_table(report))
    return 0


# ---------------------------------------------------------------------------------------

def _num(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def format_table(report) -> str:
    """A report for a terminal: verdict first, then the forum's numbers, then per tap."""
    cfg, s = report.config, report.summary
    env = report.environment
    lines = [
        f"A = {_side_words(report, 'a')}   B = {_side_words(report, 'b')}"
        f"   {cfg.activation}, init {cfg.init_scheme} {cfg.init_constant:g}, layers "
        f"{'-'.join(str(n) for n in cfg.layer_sizes)}, rows {cfg.rows}, {cfg.dtype} on "
        f"{env['device']} ({env['device_name']}), torch {env['torch_version']}",
        "",
        f"VERDICT [{report.verdict.code}]: {report.verdict.headline}",
        *(f"  - {d}" for d in report.verdict.details),
        "",
        f"forum's numbers: mean(B_logits - A_logits) = {s.logits_mean_diff!r}   "
        f"sum(B_feats - A_feats) = {s.feats_sum_diff!r}",
        f"max |A-B| = {_num(s.max_abs_diff)}   max rel = {_num(s.max_rel_diff)}   "
        f"max ULP = {_num(s.max_ulp_diff)} ({_num(s.max_bits)} bits)   "
        f"bound used (local, max) = {_num(s.max_bound_ratio)}   "
        f"A/bound = {_num(s.a_max_bound_ratio)}   B/bound = {_num(s.b_max_bound_ratio)}   "
        f"referee: {env['referee']}",
        f"machine: {env['onednn_isa']} (oneDNN), ATen {env['cpu_capability']}, "
        f"threads A {env['threads_a']} / B {env['threads_b']}"
        + (f", caps {env['isa_caps']}" if env.get("isa_caps") else "")
        + ": the summation order, and so these numbers, depend on it",
        _decision_line(s),
        *_compile_lines(report),
        "",
    ]
    header = ("tap", "width", "max|A-B|", "max rel", "max ULP", "max|A|", "local/2bound",
              "A/bound", "B/bound", "cond max", "A err vs ref", "B err vs ref", "closer")
    rows = [header]
    for t in report.taps:
        unknown = "vacuous" if (t.bound_note or "").startswith("vacuous") else None
        rows.append((t.name, str(t.width), _num(t.max_abs_diff), _num(t.max_rel_diff),
                     _num(t.max_ulp_diff), _num(t.max_abs_value),
                     *(unknown if unknown and r is None and t.stage == "pre" else _num(r)
                       for r in (t.bound_ratio, t.a_bound_ratio, t.b_bound_ratio)),
                     _num(t.condition_max), _num(t.a_max_rel_err_vs_ref),
                     _num(t.b_max_rel_err_vs_ref), t.closer_to_ref or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(r, widths)))
    lines += ["",
              "local/2bound: B's layer fed A's input; <= 1 means explained by rounding. "
              "A/bound, B/bound: each side against the exact result for its own input; "
              "<= 1 means it computed in the compute dtype. err vs ref: max |X-R|/|R| "
              "against the higher-precision referee; closer: the smaller of those two."]
    return "\n".join(lines)


def _side_words(report, side: str) -> str:
    """'linear', 'conv2d [tf32]', 'linear [one row per call, 1 thread]', 'linear_compiled'."""
    from explorer.sides import side as side_of
    from explorer.sides import variant_words

    cfg = report.config
    me = side_of(cfg, side)
    words = ([me.emulation] if me.emulation != "none" else []) + variant_words(
        cfg, side, every=True,
        threads_in_effect={"a": report.environment.get("threads_a"),
                           "b": report.environment.get("threads_b")})
    return me.implementation + (f" [{', '.join(words)}]" if words else "")


def _decision_line(s) -> str:
    """The predictions in one line: flips, ties, and the closest call with its own row."""
    if not s.argmax_rows:
        return "predictions: no row with finite logits on both sides"
    ratio = ("-" if s.argmax_margin_ratio is None else f"{_num(s.argmax_margin_ratio)}x")
    return (f"predictions (argmax over {s.argmax_rows} rows): {s.argmax_flips} changed, "
            f"{s.argmax_ties} tied in A, {s.argmax_close_rows} close (margin <= 2 |A-B|)   "
            f"smallest margin {_num(s.argmax_min_margin)} (row {s.argmax_min_margin_row}, "
            f"|A-B| there {_num(s.argmax_min_margin_diff)})   smallest margin/|A-B| {ratio}")


def _compile_lines(report) -> list[str]:
    env = report.environment
    compiled = [side.upper() for side in ("a", "b")
                if env.get(f"compile_backend_{side}", "eager") != "eager"]
    if not compiled:
        return []
    return [f"torch.compile ({env.get('compile_backend_' + compiled[0].lower())}) for "
            f"{' and '.join(compiled)}: compiling took {report.compile_seconds:.2f} s of "
            f"this run's {report.elapsed_seconds:.2f} s (0 when every layer was compiled "
            f"before)"]
