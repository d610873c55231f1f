"""ExperimentConfig: every setting of one comparison, validated in one place.

A config is a frozen dataclass of primitives (str, int, float, bool, tuple of int), so it
hashes cleanly for caches, round-trips through a URL or CLI flags, and serialises to JSON.
Everything that can be wrong with a user's input is caught here, with a message that names
the field, the value, what is allowed and what to do.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from explorer import limits

ACTIVATIONS = (
    "elu", "sigmoid", "relu", "tanh", "gelu", "silu", "leaky_relu", "softplus", "identity",
)
# constant: every weight and bias = c (the forum); constant_zero_bias: weights = c, biases 0;
# torch_default: nn.Linear's own init (uniform in +-1/sqrt(fan_in)) drawn from the seed;
# normal: weights ~ N(0, c^2), biases 0.
INIT_SCHEMES = ("constant", "constant_zero_bias", "torch_default", "normal")
DTYPES = ("float32", "float64", "float16", "bfloat16")
# linear_compiled: nn.Linear's network through torch.compile (inductor), one compiled
# function per layer shape (see explorer.compiled).
IMPLEMENTATIONS = ("linear", "conv2d", "conv1d", "tensordot", "matmul", "linear_compiled")
EAGER_IMPLEMENTATIONS = tuple(i for i in IMPLEMENTATIONS if not i.endswith("_compiled"))
# Operand rounding applied before a float32 kernel: what TF32 tensor cores, bf16 or fp16
# multipliers do to the inputs of each product (accumulation stays float32).
EMULATIONS = ("none", "tf32", "bf16", "fp16")
# Input distributions: the forum's standard normal, or small integers (-4..4) for which
# every sum in the network is exact and any difference must be exactly zero.
INPUTS = ("normal", "integers")
# CUDA backend switch states; "default" leaves PyTorch's own setting alone.
TRISTATE = ("default", "on", "off")
# oneDNN's float32 precision on the CPU (torch.backends.mkldnn.{matmul,conv}.fp32_precision):
# "bf16" computes float32 work in bfloat16 where the CPU supports it; "default" leaves it.
CPU_PRECISIONS = ("default", "ieee", "bf16", "tf32")

MAX_DEPTH = 16
MAX_WIDTH = 4096
MAX_INPUT_DIM = 4096
MAX_CLASSES = 4096
MAX_ROWS = 65536  # batch * samples
MIN_INIT_CONSTANT = 1e-6
MAX_INIT_CONSTANT = 100.0
MAX_SEED = 2**63 - 1
MAX_THREADS = 256
# Availability is checked when a run resolves the device (devices.resolve_device).
_DEVICE_NAME = re.compile(r"^(cpu|mps|cuda(:[0-9]{1,2})?)$")


def default_widths(depth: int) -> tuple[int, ...]:
    """64, 128, 256 for depth 3: start at 64, double per layer, cap at 1024."""
    return tuple(min(64 * 2**i, 1024) for i in range(depth))


@dataclass(frozen=True)
class ExperimentConfig:
    """One comparison: the network, its parameters and input, where and how it runs."""

    activation: str = "elu"
    init_scheme: str = "constant"
    init_constant: float = 1.0
    depth: int = 3  # hidden layers; the network has depth + 1 affine layers
    widths: tuple[int, ...] = ()  # hidden widths; () means default_widths(depth)
    input_dim: int = 256
    num_classes: int = 4
    batch: int = 16
    samples: int = 5  # the forum's S: each sample is a row, shape (B, S, C)
    seed: int = 2010
    input_distribution: str = "normal"
    device: str = "cpu"
    dtype: str = "float32"
    impl_a: str = "linear"
    impl_b: str = "conv2d"
    emulate_a: str = "none"
    emulate_b: str = "none"
    # CUDA-only backend switches (ignored on other devices, and reported as such).
    conv_tf32: str = "default"
    matmul_tf32: str = "default"
    cudnn_deterministic: bool = False
    cudnn_benchmark: bool = False
    threads: int = 0  # intra-op CPU threads for this run; 0 keeps the process setting
    # CPU-only oneDNN switches (ignored on other devices, and reported as such): matmul
    # covers Linear, matmul, tensordot (and 1x1 convolutions over a batch of one); conv
    # covers 1x1 convolutions over a batch of two or more.
    cpu_matmul_precision: str = "default"
    cpu_conv_precision: str = "default"
    # Execution variants per side (see explorer.sides): how each side calls its kernels.
    rows_per_call_a: int = 0  # rows per kernel call; 0 = the whole batch in one call
    rows_per_call_b: int = 0
    threads_a: int = 0  # this side's intra-op threads; 0 = `threads` (both sides' setting)
    threads_b: int = 0

    def __post_init__(self) -> None:
        validate(self)

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        return self.widths if self.widths else default_widths(self.depth)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Input dim, every hidden width, number of classes: 256, 64, 128, 256, 4 for the forum."""
        return (self.input_dim, *self.hidden_widths, self.num_classes)

    @property
    def rows(self) -> int:
        return self.batch * self.samples

    def replace(self, **changes: Any) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["widths"] = list(self.hidden_widths)
        return d


def _problem(name: str, value: Any, allowed: str, fix: str) -> ValueError:
    return ValueError(f"{name}={value!r} is not allowed: {allowed}. {fix}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise _problem(name, value, f"choose one of {', '.join(choices)}",
                       f"Use e.g. {name}={choices[0]}.")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _problem(name, value, f"it must be a whole number from {low} to {high}",
                       f"Pick a value in that range (default {_DEFAULTS[name]!r}).")


def _check_init_constant(c: Any) -> None:
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) \
            or not MIN_INIT_CONSTANT <= abs(c) <= MAX_INIT_CONSTANT:
        raise _problem("init_constant", c,
                       f"its magnitude must be a finite number from {MIN_INIT_CONSTANT:g} "
                       f"to {MAX_INIT_CONSTANT:g} (negative values allowed)",
                       "The forum used 1; try 1 or 0.001.")


def _check_widths(widths: Any) -> None:
    if not isinstance(widths, tuple):
        raise _problem("widths", widths, "it must be a tuple of whole numbers",
                       "Pass e.g. widths=(64, 128, 256) or () for the default.")
    if len(widths) > MAX_DEPTH:
        raise _problem("widths", widths, f"at most {MAX_DEPTH} hidden widths",
                       "Give one width per hidden layer.")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= MAX_WIDTH:
            raise _problem("widths", widths,
                           f"every width must be a whole number from 1 to {MAX_WIDTH}",
                           "Lower the widths, e.g. 64,128,256.")


def _check_device(device: Any) -> None:
    if not isinstance(device, str) or not _DEVICE_NAME.match(device):
        raise _problem("device", device, "use cpu, cuda, cuda:N or mps", "Use device=cpu.")


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _problem(name, value, "it must be true or false", "Use true or false.")


# Each field's own rule: type and range, independent of every other field.
_FIELD_CHECKS: dict[str, Any] = {
    "activation": lambda v: _check_choice("activation", v, ACTIVATIONS),
    "init_scheme": lambda v: _check_choice("init_scheme", v, INIT_SCHEMES),
    "init_constant": _check_init_constant,
    "depth": lambda v: _check_int("depth", v, 1, MAX_DEPTH),
    "widths": _check_widths,
    "input_dim": lambda v: _check_int("input_dim", v, 1, MAX_INPUT_DIM),
    "num_classes": lambda v: _check_int("num_classes", v, 1, MAX_CLASSES),
    "batch": lambda v: _check_int("batch", v, 1, MAX_ROWS),
    "samples": lambda v: _check_int("samples", v, 1, MAX_ROWS),
    "seed": lambda v: _check_int("seed", v, 0, MAX_SEED),
    "input_distribution": lambda v: _check_choice("input_distribution", v, INPUTS),
    "device": _check_device,
    "dtype": lambda v: _check_choice("dtype", v, DTYPES),
    "impl_a": lambda v: _check_choice("impl_a", v, IMPLEMENTATIONS),
    "impl_b": lambda v: _check_choice("impl_b", v, IMPLEMENTATIONS),
    "emulate_a": lambda v: _check_choice("emulate_a", v, EMULATIONS),
    "emulate_b": lambda v: _check_choice("emulate_b", v, EMULATIONS),
    "conv_tf32": lambda v: _check_choice("conv_tf32", v, TRISTATE),
    "matmul_tf32": lambda v: _check_choice("matmul_tf32", v, TRISTATE),
    "cudnn_deterministic": lambda v: _check_flag("cudnn_deterministic", v),
    "cudnn_benchmark": lambda v: _check_flag("cudnn_benchmark", v),
    "threads": lambda v: _check_int("threads", v, 0, 256),
    "cpu_matmul_precision": lambda v: _check_choice("cpu_matmul_precision", v, CPU_PRECISIONS),
    "cpu_conv_precision": lambda v: _check_choice("cpu_conv_precision", v, CPU_PRECISIONS),
    # Execution variants per side (explorer.sides).
    "rows_per_call_a": lambda v: _check_int("rows_per_call_a", v, 0, MAX_ROWS),
    "rows_per_call_b": lambda v: _check_int("rows_per_call_b", v, 0, MAX_ROWS),
    "threads_a": lambda v: _check_int("threads_a", v, 0, MAX_THREADS),
    "threads_b": lambda v: _check_int("threads_b", v, 0, MAX_THREADS),
}


def check_field(name: str, value: Any) -> None:
    """Raise ValueError when one field's value is wrong on its own (type or range).

    Rules that involve several fields (widths vs depth, rows, emulation vs dtype, the run
    budget) are checked by ``validate`` on the whole config, once.
    """
    check = _FIELD_CHECKS.get(name)
    if check is None:
        raise _problem("setting", name, f"known settings are {', '.join(_FIELD_CHECKS)}",
                       "Remove it or fix its spelling.")
    check(value)


def check_combination(config: ExperimentConfig) -> None:
    """The rules between fields, and the run budget; each message says what to change."""
    if config.widths and len(config.widths) != config.depth:
        raise _problem("widths", config.widths,
                       f"give exactly one width per hidden layer (depth={config.depth})",
                       "Match the number of widths to depth, or leave widths empty.")
    if config.rows > MAX_ROWS:
        raise _problem("batch*samples", config.rows, f"at most {MAX_ROWS} rows in one run",
                       "Lower batch or samples.")
    for side in ("emulate_a", "emulate_b"):
        if getattr(config, side) != "none" and config.dtype != "float32":
            raise _problem(side, getattr(config, side),
                           f"emulation rounds float32 operands, but dtype is {config.dtype}",
                           "Set dtype=float32 or the emulation to none.")
    limits.check_kernel_calls(config)
    limits.check_budget(config)


def validate(config: ExperimentConfig) -> None:
    """Raise ValueError naming the first bad field; called by ExperimentConfig itself."""
    for f in dataclasses.fields(config):
        check_field(f.name, getattr(config, f.name))
    check_combination(config)


# Built without validation: these are the dataclass defaults, used in messages above.
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ExperimentConfig)}


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str
    changes: Mapping[str, Any] = field(default_factory=dict)

    def config(self, **overrides: Any) -> ExperimentConfig:
        return ExperimentConfig(**{**self.changes, **overrides})


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("seed", "The forum case",
               "ELU, every weight and bias = 1, 256-64-128-256-4, batch 16 x 5 samples, "
               "seed 2010, float32: Linear vs 1x1 Conv2d exactly as the forum script."),
        Preset("squashed", "Sigmoid, small weights",
               "The thread's closing suggestion: sigmoid and weights 0.001. Small values, "
               "small absolute differences.",
               {"activation": "sigmoid", "init_constant": 0.001}),
        Preset("tf32_conv", "Conv in TF32 (emulated)",
               "What an Ampere GPU does by default: the conv side multiplies TF32-rounded "
               "operands. Differences exceed the float32 rounding bound.",
               {"emulate_b": "tf32"}),
        Preset("realistic", "PyTorch default init",
               "nn.Linear's own random init with GELU: the differences a real model sees.",
               {"activation": "gelu", "init_scheme": "torch_default"}),
        Preset("exact", "Integers: exactly equal",
               "Identity activation, integer weights and inputs: every sum is exact, so "
               "both implementations agree to the last bit.",
               {"activation": "identity", "input_distribution": "integers",
                "init_constant": 1.0, "depth": 2}),  # depth 3 would pass 2^24: inexact
        Preset("real_bf16", "Real bf16 on this CPU",
               "oneDNN's matmul precision set to bf16: on CPUs with AVX512-BF16 or AMX that "
               "really honour it, Linear (A) computes in bfloat16 while the 1x1 Conv2d (B, "
               "batch 16) stays float32. CPUs that ignore it stay float32 (the verdict "
               "says so); emulation shows what bf16 would do.",
               {"cpu_matmul_precision": "bf16"}),
        Preset("half", "float16 compute",
               "The forum network in float16: ELU with weights 1 overflows float16's 65504.",
               {"dtype": "float16"}),
        # The same question for other pairs (issue 12): execution variants of one side.
        Preset("batch_invariance", "Batch invariance",
               "Does the batch size change the numbers? The forum's Linear network over the "
               "whole batch (A) against the same network run one row per call (B).",
               {"impl_b": "linear", "rows_per_call_b": 1}),
        Preset("threads", "Threads: 1 vs default",
               "The forum's Linear network with one CPU thread (A) against the process's "
               "default thread count (B). Kernels may split sums by thread.",
               {"impl_b": "linear", "threads_a": 1}),
        Preset("compiled", "Compiled vs eager",
               "The forum's Linear network eager (A) against torch.compile (inductor, B). "
               "The first run compiles each layer: tens of seconds, then cached.",
               {"impl_b": "linear_compiled"}),
        Preset("bf16_predictions", "bf16 predictions",
               "PyTorch's default init, GELU, 64 classes over 64 x 8 rows; B is the same "
               "Linear network with bfloat16 operands. How many predicted classes change, "
               "and how close are the closest calls?",
               {"activation": "gelu", "init_scheme": "torch_default", "num_classes": 64,
                "batch": 64, "samples": 8, "impl_b": "linear", "emulate_b": "bf16"}),
    )
}


def preset(name: str, **overrides: Any) -> ExperimentConfig:
    if name not in PRESETS:
        raise _problem("preset", name, f"choose one of {', '.join(PRESETS)}",
                       "Use preset=seed for the forum case.")
    return PRESETS[name].config(**overrides)


# ---------------------------------------------------------------------------------------
# Parsing from text (URL query parameters, CLI flags): strings in, typed values out.

FIELD_TYPES: dict[str, type] = {
    f.name: type(f.default) for f in dataclasses.fields(ExperimentConfig)
}


def parse_field(name: str, text: str) -> Any:
    """Turn one textual value into the field's type; ValueError names the field on failure."""
    if name not in FIELD_TYPES:
        raise _problem("setting", name, f"known settings are {', '.join(FIELD_TYPES)}",
                       "Remove it or fix its spelling.")
    kind = FIELD_TYPES[name]
    text = str(text).strip()
    if len(text) > 200:
        raise _problem(name, text[:40] + "...", "values are short", "Shorten the value.")
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            value = float(text)
            return value
        if kind is tuple:
            if text in ("", "default"):
                return ()
            return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
        return text
    except ValueError:
        if kind in (int, float):
            # The field's own rule says what is allowed: its range and default.
            try:
                _FIELD_CHECKS[name](text)  # a string always fails a number's check
            except ValueError as err:
                raise err from None
        expected = {bool: "true or false", int: "a whole number", float: "a number",
                    tuple: f"comma-separated whole numbers from 1 to {MAX_WIDTH}, one per "
                           "hidden layer, like 64,128,256"}[kind]
        raise _problem(name, text, f"expected {expected}", "Fix the value.") from None


def config_from_strings(values: Mapping[str, str], base: ExperimentConfig | None = None
                        ) -> ExperimentConfig:
    """Build a config from textual values over a base (default: the seed preset).

    A ``preset`` key selects the base. Raises ValueError on the first bad value; callers
    that must never fail (the URL) use ``config_from_strings_lenient``.
    """
    values = dict(values)
    start = preset(values.pop("preset")) if "preset" in values else (base or ExperimentConfig())
    changes = {name: parse_field(name, text) for name, text in values.items()}
    if "depth" in changes and "widths" not in changes and start.widths:
        changes["widths"] = ()
    return start.replace(**changes)


def parse_strings_lenient(values: Mapping[str, str], base: ExperimentConfig
                          ) -> tuple[dict[str, Any], list[str]]:
    """Each textual value parsed and checked on its own: (changes to base, warnings).

    A value that is wrong on its own (not a number, out of range, unknown name, a device
    this machine lacks) is left out, so the base's value stays, and reported. Nothing is
    checked in combination here: the values are applied together by the caller and
    validated once, so their order cannot matter (batch=2000&samples=1 is fine even though
    batch=2000 with the base's samples would be over budget).
    """
    changes: dict[str, Any] = {}
    warnings: list[str] = []
    for name, text in values.items():
        try:
            value = parse_field(name, text)
            check_field(name, value)
        except (ValueError, TypeError) as err:
            warnings.append(f"{err} Using {name}={getattr(base, name)!r} instead."
                            if name in FIELD_TYPES else str(err))
            continue
        changes[name] = value
    # Explicit widths belong to the base's depth.
    if "depth" in changes and "widths" not in changes and base.widths:
        changes["widths"] = ()
    device = changes.get("device", base.device)
    if device != "cpu":
        from explorer.devices import resolve_device

        try:
            resolve_device(device)
        except ValueError as err:
            warnings.append(f"{err} Using device='cpu' instead.")
            changes["device"] = "cpu"
    return changes, warnings


def config_from_strings_lenient(values: Mapping[str, str], base: ExperimentConfig | None = None
                                ) -> tuple[ExperimentConfig, list[str]]:
    """Like config_from_strings, but a bad value falls back to the base's and is reported.

    Returns the config and one message per ignored value: hand-edited URLs land here. The
    good values are applied together and validated once; if together they cannot run
    (over the run budget, widths that do not match depth), none is applied and the
    message says why and what to lower.
    """
    base = base or ExperimentConfig()
    warnings: list[str] = []
    values = dict(values)
    if "preset" in values:
        try:
            base = preset(values.pop("preset"))
        except ValueError as err:
            warnings.append(str(err))
            values.pop("preset", None)
    changes, problems = parse_strings_lenient(values, base)
    warnings += problems
    try:
        return base.replace(**changes), warnings
    except ValueError as err:
        named = ", ".join(f"{name}={value!r}" for name, value in changes.items())
        warnings.append(f"These settings cannot run together ({named}): {err} None of them "
                        "was applied.")
        return base, warnings


def config_to_strings(config: ExperimentConfig, base: ExperimentConfig | None = None
                      ) -> dict[str, str]:
    """The fields that differ from base, as text: short URLs that round-trip."""
    return values_to_strings({f.name: getattr(config, f.name)
                              for f in dataclasses.fields(ExperimentConfig)}, base)


def values_to_strings(values: Mapping[str, Any], base: ExperimentConfig | None = None
                      ) -> dict[str, str]:
    """Field values that differ from base, as text (config_to_strings for values that need
    not form a valid config together, e.g. settings over the run budget)."""
    base = base or ExperimentConfig()
    out: dict[str, str] = {}
    for f in dataclasses.fields(ExperimentConfig):
        value = values.get(f.name, getattr(base, f.name))
        if value == getattr(base, f.name):
            continue
        out[f.name] = field_text(value)
    return out


def field_text(value: Any) -> str:
    """One field's value as a URL or CLI writes it (parse_field reads it back)."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)
