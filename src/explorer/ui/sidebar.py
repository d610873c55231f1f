"""The Explorer's sidebar: widgets in, a ViewState out, the URL kept in step.

Widget values live in st.session_state under keys "ex.<field>". The URL is read when it
carries something this session did not write itself (a pasted link, a page link with
parameters) and written back after every run, so it always reproduces the view. Widgets
that are not rendered (another page, a hidden CUDA control) fall back to the last view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import streamlit as st

from explorer import limits
from explorer.config import (
    ACTIVATIONS,
    DTYPES,
    EMULATIONS,
    IMPLEMENTATIONS,
    INIT_SCHEMES,
    INPUTS,
    MAX_CLASSES,
    MAX_DEPTH,
    MAX_INIT_CONSTANT,
    MAX_INPUT_DIM,
    MAX_ROWS,
    MAX_THREADS,
    MIN_INIT_CONSTANT,
    PRESETS,
    TRISTATE,
    ExperimentConfig,
    default_widths,
    parse_field,
    preset,
)
from explorer.devices import available_devices, unavailable_devices
from explorer.ui.state import (
    MAX_WIDGET_INT,
    TAP_STAGES,
    ViewState,
    parse_url,
    safe_text,
    to_url,
)

PREFIX = "ex."
VIEW_KEY = "ex:view"  # the last good ViewState
URL_KEY = "ex:url"  # the query parameters this session last wrote
WARNINGS_KEY = "ex:url_warnings"  # (warnings, the URL they belong to)
EXACT_INIT = PREFIX + "init_constant_exact"

# 1-2-5 steps per decade from 1e-6 to 100: a log scale a slider can walk.
INIT_GRID = tuple(float(f"{m}e{e}") for e in range(-6, 3) for m in (1, 2, 5)
                  if MIN_INIT_CONSTANT <= float(f"{m}e{e}") <= MAX_INIT_CONSTANT)

CONFIG_FIELDS = tuple(f for f in ExperimentConfig.__dataclass_fields__ if f != "widths")

HELP = {
    "preset": "A starting point. 'The forum case' is the original script: ELU, every weight "
              "and bias 1, Linear vs 1x1 Conv2d. Choosing a preset resets every setting.",
    "activation": "The nonlinearity between layers. ELU keeps large positive values (the "
                  "forum's activations reach ~1e8); sigmoid squashes them into (0, 1).",
    "init_constant": "Value of every weight (and bias, for 'constant' init), on a log scale. "
                     "The forum used 1; the thread suggested 0.001. Ignored by torch_default.",
    "init_constant_exact": "Type any value with magnitude 1e-6 to 100 (negative allowed); "
                           "the slider follows.",
    "depth": "Number of hidden layers; the network has depth + 1 affine layers.",
    "device": "Where both networks run. Only devices this machine has are offered.",
    "dtype": "Compute precision of both networks. The reference is always computed in "
             "higher precision (float64, or wider for float64).",
    "impl_a": "Implementation A of the same affine layer. linear = nn.Linear on (B, S, C).",
    "impl_b": "Implementation B. conv2d = 1x1 nn.Conv2d on (B, C, S, 1), as in the forum.",
    "emulate_a": "Round A's operands before each product, as reduced-precision hardware "
                 "does (tf32 = Ampere tensor cores). Accumulation stays float32.",
    "emulate_b": "Round B's operands before each product. tf32 shows what a GPU's cuDNN "
                 "convolutions do by default.",
    "conv_tf32": "CUDA: TF32 for cuDNN convolutions. 'default' leaves PyTorch's setting "
                 "(on for convolutions).",
    "matmul_tf32": "CUDA: TF32 for cuBLAS matmuls (Linear). 'default' leaves PyTorch's "
                   "setting (off for matmuls).",
    "cudnn_deterministic": "CUDA: ask cuDNN for deterministic algorithms only.",
    "cudnn_benchmark": "CUDA: let cuDNN time several algorithms and pick the fastest.",
    "init_scheme": "constant: every weight and bias = c (the forum); constant_zero_bias: "
                   "biases 0; torch_default: nn.Linear's own random init; normal: N(0, c^2).",
    "input_distribution": "normal: torch.randn as in the forum; integers: -4..4, for which "
                          "every sum is exact and A and B must agree to the last bit.",
    "input_dim": "Features per input row (the forum: 256).",
    "widths": "Hidden widths, comma-separated, one per hidden layer (e.g. 64,128,256). "
              "Empty: 64, doubling per layer, capped at 1024.",
    "num_classes": "Width of the last layer, the logits (the forum: 4).",
    "batch": "Batch size B (the forum: 16).",
    "samples": "Rows per batch element S (the forum: 5); B x S rows in all.",
    "seed": "torch.manual_seed for the input (and random inits). The forum used 2010.",
    "threads": "CPU threads for this run; 0 keeps the server's setting. Kernels may sum in "
               "a different order with a different thread count.",
    # Execution variants: how each side calls its kernels (explorer.sides).
    "rows_per_call_a": "A runs each layer in calls of this many rows and joins the results; "
                       "0 = the whole batch in one call. A row is one (batch element, "
                       "sample) position, also for the conv layouts.",
    "rows_per_call_b": "B runs each layer in calls of this many rows; 0 = the whole batch. "
                       "With implementation B = linear and 1, this asks: does the batch "
                       "size change the numbers (batch invariance)?",
    "threads_a": "A's own CPU thread count; 0 = the run's threads setting. The run then "
                 "holds the process alone and restores the count after.",
    "threads_b": "B's own CPU thread count; 0 = the run's threads setting.",
}

COMPILED_NOTE = ("linear_compiled runs nn.Linear's network through torch.compile "
                 "(inductor). The first run of each layer shape compiles: tens of seconds; "
                 "after that it is cached for the server's life.")


@dataclass
class SidebarResult:
    view: ViewState  # what to show: the widgets' config, or the last good one
    errors: list[str] = field(default_factory=list)  # settings that could not be applied
    url_warnings: list[str] = field(default_factory=list)  # URL values that were not used


def _key(name: str) -> str:
    return PREFIX + name


def _widget_values(view: ViewState) -> dict[str, Any]:
    """Session-state values that make the widgets show this view."""
    cfg = view.config
    values: dict[str, Any] = {_key(f): getattr(cfg, f) for f in CONFIG_FIELDS}
    values[_key("widths")] = ",".join(map(str, cfg.widths))
    values[EXACT_INIT] = cfg.init_constant
    values[_key("preset")] = view.preset
    values[_key("taps")] = view.taps
    values[_key("hist")] = view.hist  # "" (the logits) is resolved by the page
    return values


def _seed_widgets(view: ViewState, force: bool) -> None:
    for key, value in _widget_values(view).items():
        if force or key not in st.session_state:
            st.session_state[key] = value


def _on_preset() -> None:
    """Choosing a preset resets every setting to it (device stays where it is)."""
    name = st.session_state[_key("preset")]
    device = st.session_state.get(_key("device"), "cpu")
    view = ViewState(preset=name, config=preset(name, device=device),
                     taps=st.session_state.get(_key("taps"), "both"))
    for key, value in _widget_values(view).items():
        if key != _key("taps"):
            st.session_state[key] = value


def _on_init_slider() -> None:
    st.session_state[EXACT_INIT] = st.session_state[_key("init_constant")]


def _on_init_exact() -> None:
    value = st.session_state[EXACT_INIT]
    if value is not None and math.isfinite(value) and value != 0:
        st.session_state[_key("init_constant")] = float(value)


def _on_dtype() -> None:
    # Emulation rounds float32 operands; other dtypes compute as they are.
    if st.session_state[_key("dtype")] != "float32":
        st.session_state[_key("emulate_a")] = "none"
        st.session_state[_key("emulate_b")] = "none"


def _on_depth() -> None:
    widths = st.session_state.get(_key("widths"), "")
    if widths and len([w for w in widths.split(",") if w.strip()]) != st.session_state[
            _key("depth")]:
        st.session_state[_key("widths")] = ""


def sync_from_url() -> list[str]:
    """Apply the URL when it is new to this session; restore the last view otherwise."""
    params = st.query_params.to_dict()
    stored: ViewState = st.session_state.get(VIEW_KEY, ViewState())
    if params and params != st.session_state.get(URL_KEY):
        view, warnings = parse_url(params)
        _seed_widgets(view, force=True)
        st.session_state[VIEW_KEY] = view
        st.session_state[WARNINGS_KEY] = (warnings, to_url(view))
        return warnings
    _seed_widgets(stored, force=False)
    return []


def _pick(label: str, name: str, options: tuple[str, ...] | list[str], **kwargs: Any) -> Any:
    key = _key(name)
    if st.session_state.get(key) not in options:  # e.g. a device that went away
        st.session_state[key] = options[0]
    return st.selectbox(label, options, key=key, help=HELP[name], **kwargs)


def _init_constant_controls(disabled: bool) -> float:
    key = _key("init_constant")
    current = st.session_state.get(key, 1.0)
    options = sorted(set(INIT_GRID) | {float(current)})
    st.select_slider("Init constant c (log scale)", options=options, key=key,
                     format_func=lambda v: f"{v:g}", help=HELP["init_constant"],
                     on_change=_on_init_slider, disabled=disabled)
    st.number_input("Init constant, exact", min_value=-MAX_INIT_CONSTANT,
                    max_value=MAX_INIT_CONSTANT, format="%g", step=None, key=EXACT_INIT,
                    help=HELP["init_constant_exact"], on_change=_on_init_exact,
                    disabled=disabled)
    return float(st.session_state[key])


def _int_input(label: str, name: str, low: int, high: int) -> int:
    key = _key(name)
    value = st.session_state.get(key)
    if not isinstance(value, int) or not low <= value <= high:
        st.session_state[key] = min(max(int(value or low), low), high)
    return int(st.number_input(label, min_value=low, max_value=high, step=1, key=key,
                               help=HELP[name]))


def _widths(depth: int, errors: list[str]) -> tuple[int, ...]:
    text = st.text_input("Hidden widths", key=_key("widths"), help=HELP["widths"],
                         placeholder="default: 64,128,256,...", max_chars=200)
    if not text.strip():
        return ()
    try:
        widths = parse_field("widths", text)
    except ValueError as err:
        errors.append(f"{err} Using the default widths.")
        return ()
    if len(widths) != depth:
        errors.append(f"widths={text!r} gives {len(widths)} widths but depth is {depth}: "
                      f"give one per hidden layer. Using the default widths.")
        return ()
    return widths


def _variant_controls(values: dict[str, Any], col_a, col_b) -> None:
    """Rows per call and threads for each side (0 = whole batch / the run's setting)."""
    with col_a:
        values["rows_per_call_a"] = _int_input("Rows per call A", "rows_per_call_a", 0,
                                               MAX_ROWS)
        values["threads_a"] = _int_input("Threads A", "threads_a", 0, MAX_THREADS)
    with col_b:
        values["rows_per_call_b"] = _int_input("Rows per call B", "rows_per_call_b", 0,
                                               MAX_ROWS)
        values["threads_b"] = _int_input("Threads B", "threads_b", 0, MAX_THREADS)
    if "linear_compiled" in (values["impl_a"], values["impl_b"]):
        st.caption(COMPILED_NOTE)


def render_sidebar() -> SidebarResult:
    """Draw the sidebar; return the view to show (falling back to the last good one)."""
    url_warnings = sync_from_url()
    stored: ViewState = st.session_state.get(VIEW_KEY, ViewState())
    errors: list[str] = []
    values: dict[str, Any] = {}
    ss = st.session_state
    with st.sidebar:
        st.header("Settings")
        names = list(PRESETS)
        preset_name = _pick("Preset", "preset", names,
                            format_func=lambda n: PRESETS[n].title, on_change=_on_preset)
        st.caption(safe_text(PRESETS[preset_name].description))
        values["activation"] = _pick("Activation", "activation", ACTIVATIONS)
        scheme = ss.get(_key("init_scheme"), stored.config.init_scheme)
        values["init_constant"] = _init_constant_controls(disabled=scheme == "torch_default")
        values["depth"] = int(st.slider("Depth (hidden layers)", 1, MAX_DEPTH,
                                        key=_key("depth"), help=HELP["depth"],
                                        on_change=_on_depth))
        values["device"] = _pick("Device", "device", available_devices())
        for family, reason in unavailable_devices().items():
            if family == "cuda":
                st.caption(safe_text(f"No CUDA here: {reason}. GPU TF32 convolutions are "
                                     f"emulated instead: set Emulation B to tf32."))
        values["dtype"] = _pick("Compute dtype", "dtype", DTYPES, on_change=_on_dtype)
        col_a, col_b = st.columns(2)
        with col_a:
            values["impl_a"] = _pick("A (blue)", "impl_a", IMPLEMENTATIONS)
        with col_b:
            values["impl_b"] = _pick("B (orange)", "impl_b", IMPLEMENTATIONS)
        not_float32 = values["dtype"] != "float32"
        with col_a:
            values["emulate_a"] = _pick("Emulation A", "emulate_a", EMULATIONS,
                                        disabled=not_float32)
        with col_b:
            values["emulate_b"] = _pick("Emulation B", "emulate_b", EMULATIONS,
                                        disabled=not_float32)
        if not_float32:
            st.caption("Emulation rounds float32 operands, so it is off for "
                       f"{values['dtype']}.")
        _variant_controls(values, col_a, col_b)
        if str(values["device"]).startswith("cuda"):
            st.subheader("CUDA backend")
            values["conv_tf32"] = _pick("TF32 for convolutions", "conv_tf32", TRISTATE)
            values["matmul_tf32"] = _pick("TF32 for matmuls", "matmul_tf32", TRISTATE)
            values["cudnn_deterministic"] = st.checkbox(
                "cuDNN deterministic", key=_key("cudnn_deterministic"),
                help=HELP["cudnn_deterministic"])
            values["cudnn_benchmark"] = st.checkbox(
                "cuDNN benchmark", key=_key("cudnn_benchmark"), help=HELP["cudnn_benchmark"])
        with st.expander("Advanced"):
            values["init_scheme"] = _pick("Init scheme", "init_scheme", INIT_SCHEMES)
            values["input_distribution"] = _pick("Input values", "input_distribution", INPUTS)
            values["input_dim"] = _int_input("Input dim", "input_dim", 1, MAX_INPUT_DIM)
            values["widths"] = _widths(values["depth"], errors)
            values["num_classes"] = _int_input("Classes (logits width)", "num_classes", 1,
                                               MAX_CLASSES)
            # The row ranges follow the per-run budget for the layer sizes chosen above.
            sizes = (values["input_dim"], *(values["widths"] or default_widths(values["depth"])),
                     values["num_classes"])
            budget_rows = min(MAX_ROWS, max(1, limits.max_rows(sizes, values["dtype"])))
            values["batch"] = _int_input("Batch B", "batch", 1, budget_rows)
            values["samples"] = _int_input("Samples per row S", "samples", 1,
                                           max(1, budget_rows // values["batch"]))
            st.caption(f"The run budget allows up to {budget_rows:,} rows (B x S) for these "
                       "layer sizes.")
            values["seed"] = _int_input("Seed", "seed", 0, MAX_WIDGET_INT)
            values["threads"] = _int_input("CPU threads", "threads", 0, 256)

    # Hidden widgets (CUDA switches off CUDA) keep the last view's values.
    for name in CONFIG_FIELDS:
        values.setdefault(name, ss.get(_key(name), getattr(stored.config, name)))
    if values["dtype"] != "float32":
        values["emulate_a"] = values["emulate_b"] = "none"
    try:
        config = ExperimentConfig(**values)
    except ValueError as err:
        errors.append(f"These settings were not applied: {err}")
        config = stored.config
    view = replace(stored, preset=preset_name, config=config,
                   taps=ss.get(_key("taps"), stored.taps))
    st.session_state[VIEW_KEY] = view
    if url_warnings:
        return SidebarResult(view, errors, url_warnings)
    pending = st.session_state.get(WARNINGS_KEY)
    # URL warnings stay up until the view is changed by hand.
    if pending and pending[1] == to_url(view):
        return SidebarResult(view, errors, list(pending[0]))
    return SidebarResult(view, errors, [])


def view_controls(taps_label: str = "Taps shown in the by-layer charts") -> str:
    """The pre/post selector above the charts (part of the view, so it is in the URL)."""
    key = _key("taps")
    if st.session_state.get(key) not in TAP_STAGES:
        st.session_state[key] = "both"
    labels = {"both": "pre and post", "pre": "pre-activation (affine output)",
              "post": "post-activation"}
    return st.radio(taps_label, TAP_STAGES, key=key, horizontal=True,
                    format_func=labels.__getitem__,
                    help="pre: the affine layer's output W x + b; post: after the "
                         "activation. The logits are the last pre tap.")


def write_url(view: ViewState) -> None:
    """Put the view in the address bar (only when it changed, to spare the browser)."""
    params = to_url(view)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    st.session_state[URL_KEY] = params
