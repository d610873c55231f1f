"""The Explorer's sidebar: widgets in, a ViewState out, the URL kept in step.

Widget values live in st.session_state under keys "ex.<field>". The URL is read when it
carries something this session did not write itself (a pasted link, a page link with
parameters) and written back after every run, so it always reproduces the view. Widgets
that are not rendered (another page, a hidden CUDA control) fall back to the last view.

Nothing here changes a setting the user made: settings that cannot run together (over the
run budget, widths that do not match the depth) stay as set, and the page says what to
lower. The main controls come first, so they fit on a 1280x720 projector's first screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import streamlit as st

from explorer import limits, machine
from explorer.config import (
    ACTIVATIONS,
    CPU_PRECISIONS,
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
    check_field,
    default_widths,
    parse_field,
    preset,
)
from explorer.devices import available_devices, unavailable_devices
from explorer.ui.state import (
    FIELD_NAMES,
    MAX_WIDGET_INT,
    TAP_STAGES,
    Settings,
    ViewState,
    abbreviated,
    differences,
    named_list,
    parse_url,
    safe_text,
    to_url,
)

PREFIX = "ex."
VIEW_KEY = "ex:view"  # the last ViewState (its settings may not run; see ViewState.problem)
URL_KEY = "ex:url"  # the query parameters this session last wrote
WARNINGS_KEY = "ex:url_warnings"  # (warnings, the URL they belong to)
EXACT_INIT = PREFIX + "init_constant_exact"
LAST_RUN_KEY = "ex:last_run"  # the last config that ran: shown while the settings cannot

# 1-2-5 steps per decade from 1e-6 to 100: a log scale a slider can walk.
INIT_GRID = tuple(float(f"{m}e{e}") for e in range(-6, 3) for m in (1, 2, 5)
                  if MIN_INIT_CONSTANT <= float(f"{m}e{e}") <= MAX_INIT_CONSTANT)

CONFIG_FIELDS = tuple(f for f in FIELD_NAMES if f != "widths")

HELP = {
    "preset": "A starting point. 'The forum case' is the original script: ELU, every weight "
              "and bias 1, Linear vs 1x1 Conv2d. Choosing a preset resets every setting; "
              "Reset does it again for the preset already chosen.",
    "activation": "The nonlinearity between layers. ELU keeps large positive values (the "
                  "forum's activations reach ~1e8); sigmoid squashes them into (0, 1).",
    "init_constant": "Value of every weight (and bias, for 'constant' init), on a log scale. "
                     "The forum used 1; the thread suggested 0.001. Ignored by torch_default.",
    "init_constant_exact": "Type any value with magnitude 1e-6 to 100 (negative allowed); "
                           "the slider follows. Other values are refused with a message.",
    "depth": "Number of hidden layers; the network has depth + 1 affine layers. The slider "
             "stops at the deepest network the run budget allows with these widths and "
             "rows; custom widths (Advanced) follow the depth, repeating the last one.",
    "device": "Where both networks run. Only devices this machine has are offered.",
    "dtype": "Compute precision of both networks. The reference is always computed in "
             "higher precision (float64, or wider for float64).",
    "impl_a": "Implementation A of the same affine layer. linear = nn.Linear on (B, S, C); "
              "compiled = nn.Linear under torch.compile (its link value: linear_compiled).",
    "impl_b": "Implementation B. conv2d = 1x1 nn.Conv2d on (B, C, S, 1), as in the forum; "
              "conv1d = kernel-1 Conv1d; tensordot, matmul = x @ W.T + b; compiled = "
              "nn.Linear under torch.compile.",
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
    "cpu_matmul_precision": "CPU: oneDNN's float32 precision for matmuls (Linear, matmul, "
                            "tensordot; a 1x1 conv over a batch of one). bf16 computes "
                            "float32 work in bfloat16 on CPUs that support it (AMX, many "
                            "with AVX512-BF16); tf32 only where the CPU has TF32; default "
                            "leaves torch's setting (full float32).",
    "cpu_conv_precision": "CPU: oneDNN's float32 precision for 1x1 convolutions over a batch "
                          "of two or more. Values as for matmul.",
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
    view: ViewState  # the settings as set; view.config is None when they cannot run
    errors: list[str] = field(default_factory=list)  # entries that were refused, and why
    url_warnings: list[str] = field(default_factory=list)  # URL values that were not used


def _key(name: str) -> str:
    return PREFIX + name


def _widget_values(preset_name: str, settings: Settings) -> dict[str, Any]:
    """Session-state values that make the widgets show these settings."""
    values: dict[str, Any] = {_key(f): settings[f] for f in CONFIG_FIELDS}
    values[_key("widths")] = ",".join(map(str, settings["widths"]))
    values[EXACT_INIT] = settings["init_constant"]
    values[_key("preset")] = preset_name
    return values


def _seed_widgets(view: ViewState, force: bool) -> None:
    values = _widget_values(view.preset, view.settings)
    values[_key("taps")] = view.taps
    for key, value in values.items():
        if force or key not in st.session_state:
            st.session_state[key] = value


def _reset_to_preset() -> None:
    """Every setting back to the chosen preset; the device stays where it is."""
    name = st.session_state[_key("preset")]
    device = st.session_state.get(_key("device"), "cpu")
    settings = Settings.of(preset(name, device=device))
    for key, value in _widget_values(name, settings).items():
        st.session_state[key] = value


def _on_init_slider() -> None:
    st.session_state[EXACT_INIT] = st.session_state[_key("init_constant")]


def _exact_init_problem(value: Any) -> str | None:
    if value is None:
        return "the exact init constant is empty"
    try:
        check_field("init_constant", float(value))
    except ValueError as err:
        return str(err)
    return None


def _on_init_exact() -> None:
    value = st.session_state[EXACT_INIT]
    if _exact_init_problem(value) is None:
        st.session_state[_key("init_constant")] = float(value)


def _widths_for_depth(widths: tuple[int, ...], depth: int) -> tuple[int, ...]:
    """Custom widths follow the depth: cut at the new depth, or repeat the last width."""
    if not widths or len(widths) == depth:
        return widths
    return widths[:depth] + (widths[-1],) * max(0, depth - len(widths))


def _on_depth() -> None:
    try:
        widths = parse_field("widths", st.session_state.get(_key("widths"), ""))
    except ValueError:
        return  # a bad widths entry is reported where it is typed
    followed = _widths_for_depth(widths, st.session_state[_key("depth")])
    st.session_state[_key("widths")] = ",".join(map(str, followed))


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


def _current(name: str, stored: ViewState) -> Any:
    """A setting's value before its widget is drawn (callbacks have already run)."""
    return st.session_state.get(_key(name), stored.settings[name])


def _pick(label: str, name: str, options: tuple[str, ...] | list[str], **kwargs: Any) -> Any:
    key = _key(name)
    if st.session_state.get(key) not in options:  # e.g. a device that went away
        st.session_state[key] = options[0]
    return st.selectbox(label, options, key=key, help=kwargs.pop("help", HELP[name]),
                        **kwargs)


# The A/B boxes are ~85 px wide at 1280: "linear_compiled" showed as "linear_com".
_IMPL_LABELS = {"linear_compiled": "compiled"}


def _impl_label(name: str) -> str:
    return _IMPL_LABELS.get(name, name)


def _init_constant_controls(disabled: bool, errors: list[str]) -> float:
    """A log slider and an exact field side by side; the exact field may hold a value that
    was refused (it stays as typed, with a message), the slider always a valid one."""
    key = _key("init_constant")
    current = float(st.session_state.get(key, 1.0))
    options = sorted(set(INIT_GRID) | {current})
    slider_col, exact_col = st.columns([5, 3], vertical_alignment="bottom")
    slider_col.select_slider("Init constant c", options=options, key=key,
                             format_func=lambda v: f"{v:g}", help=HELP["init_constant"],
                             on_change=_on_init_slider, disabled=disabled)
    exact = exact_col.number_input("exact", format="%g", step=None, key=EXACT_INIT,
                                   help=HELP["init_constant_exact"], on_change=_on_init_exact,
                                   disabled=disabled)
    problem = _exact_init_problem(exact)
    if problem is not None and not disabled:
        errors.append(f"Init constant {exact!r} was not applied: {problem} The run uses "
                      f"c = {current:g} (the slider).")
    return current


def _int_input(label: str, name: str, low: int, high: int) -> int:
    return int(st.number_input(label, min_value=low, max_value=high, step=1, key=_key(name),
                               help=HELP[name]))


def _widths(errors: list[str]) -> tuple[int, ...] | None:
    """The typed widths; None (with a message) when the text does not parse."""
    text = st.text_input("Hidden widths", key=_key("widths"), help=HELP["widths"],
                         placeholder="default: 64,128,256,...", max_chars=200)
    try:
        widths = parse_field("widths", text)
        check_field("widths", widths)
    except ValueError as err:
        errors.append(f"Hidden widths {text!r} were not applied: {err}")
        return None
    return widths


VARIANT_FIELDS = ("rows_per_call_a", "rows_per_call_b", "threads_a", "threads_b")


def _variant_controls(values: dict[str, Any]) -> None:
    """Rows per call and threads for each side (0 = whole batch / the run's setting), in
    an expander that opens by itself when a variant is set (e.g. by a preset)."""
    varied = any(st.session_state.get(_key(name)) for name in VARIANT_FIELDS)
    with st.expander("Execution: rows per call, threads", expanded=varied):
        col_a, col_b = st.columns(2)
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


def _budget_rows(sizes: tuple[int, ...], dtype: str, samples: int,
                 emulations: tuple[str, str] = ("none", "none")) -> int | None:
    """Rows the run budget allows for these layer sizes (and sides' emulations: TF32
    rounding of a wide input costs more); None if the budget is unreadable (a bad
    EXPLORER_MAX_* value: the run itself then says so)."""
    try:
        return limits.max_rows(sizes, dtype, samples=samples,
                               tf32_emulated=dtype == "float32" and "tf32" in emulations)
    except ValueError:
        return None


def _layer_sizes_at(stored: ViewState, depth: int) -> tuple[int, ...]:
    """The layer sizes the sidebar's current fields give at this depth."""
    text = st.session_state.get(_key("widths"))
    widths = stored.settings["widths"]
    if isinstance(text, str):
        try:
            widths = parse_field("widths", text)
        except ValueError:
            widths = ()
    hidden = _widths_for_depth(widths, depth) or default_widths(depth)
    return (int(_current("input_dim", stored)), *hidden, int(_current("num_classes", stored)))


def _deepest_runnable(stored: ViewState) -> int:
    """The deepest network the budget allows at the current sizes, rows and dtype."""
    samples = int(_current("samples", stored))
    rows = int(_current("batch", stored)) * samples
    dtype = _current("dtype", stored)
    emulations = (_current("emulate_a", stored), _current("emulate_b", stored))
    deepest = 1
    for depth in range(1, MAX_DEPTH + 1):
        allowed = _budget_rows(_layer_sizes_at(stored, depth), dtype, samples, emulations)
        if allowed is None:
            return MAX_DEPTH
        if allowed >= rows:
            deepest = depth
    return deepest


def preset_caption(preset_name: str, settings: Settings) -> tuple[str, str]:
    """What was changed since the preset, short, and in full for its help; ("", "") when
    nothing was (the preset's description is in its own help). Short because everything
    below it must stay above a projector's fold. The device is not part of a preset."""
    base = Settings.of(preset(preset_name, device=settings["device"]))
    changes = differences(base, settings)
    if not changes:
        return "", ""
    return (modified_caption(changes),
            f"Changed from the preset: {', '.join(changes)}. Reset (↺) restores the preset.")


# Characters of caption text that fit one line of the sidebar at its default width, with
# room for the caption's help icon (40 fit without it; with 38 the icon wrapped).
SIDEBAR_LINE_CHARS = 34


def layers_text(sizes: tuple[int, ...], limit: int = 32) -> str:
    """'256-64-128-256-4', or '256-100-…-115-4 (17 layers)' when longer than ``limit``:
    the sidebar's caption stays within two lines (the main settings line has every size)."""
    return abbreviated(sizes, "-", limit=limit, ends=2, layers=len(sizes) - 1)


def modified_caption(changes: list[str]) -> str:
    """'Modified: activation tanh, depth 4', or fewer names and a count, in one sidebar line:
    a second line would push the A/B selects below a projector's fold."""
    for limit in (2, 1):
        text = f"Modified: {named_list(changes, limit=limit)}"
        if len(text) <= SIDEBAR_LINE_CHARS:
            return text
    return f"Modified: {len(changes)} setting{'s' if len(changes) > 1 else ''}"


def _cpu_precision_controls(values: dict[str, Any], stored: ViewState) -> None:
    """oneDNN's float32 precision switches, folded away unless one is set."""
    changed = any(_current(name, stored) != "default"
                  for name in ("cpu_matmul_precision", "cpu_conv_precision"))
    with st.expander("CPU precision (oneDNN)", expanded=changed):
        matmul_col, conv_col = st.columns(2)
        with matmul_col:
            values["cpu_matmul_precision"] = _pick("Matmul", "cpu_matmul_precision",
                                                   CPU_PRECISIONS)
        with conv_col:
            values["cpu_conv_precision"] = _pick("1x1 conv", "cpu_conv_precision",
                                                 CPU_PRECISIONS)
        honoured = machine.cpu_bf16_honoured()
        if not (honoured["matmul"] or honoured["conv"]):
            st.caption("This CPU keeps float32 when asked for bf16 (a probe found results "
                       "within the float32 bound). The switch can still move Linear to "
                       "another float32 kernel, which sums in another order. Emulation "
                       "A/B = bf16 shows what real bfloat16 would do.")
        else:
            st.caption("This CPU really computes bf16 when asked (probe): matmul "
                       f"{'yes' if honoured['matmul'] else 'no'}, conv "
                       f"{'yes' if honoured['conv'] else 'no'}.")


def render_sidebar() -> SidebarResult:
    """Draw the sidebar; return the view (the settings exactly as the widgets hold them)."""
    url_warnings = sync_from_url()
    stored: ViewState = st.session_state.get(VIEW_KEY, ViewState())
    errors: list[str] = []
    values: dict[str, Any] = {}
    ss = st.session_state
    with st.sidebar:
        preset_col, reset_col = st.columns([3, 1], vertical_alignment="bottom")
        with preset_col:
            chosen = st.session_state.get(_key("preset"), stored.preset)
            preset_name = _pick("Preset", "preset", list(PRESETS),
                                format_func=lambda n: PRESETS[n].title,
                                on_change=_reset_to_preset,
                                help=HELP["preset"] + " This one: " + PRESETS.get(
                                    chosen, PRESETS["seed"]).description)
        reset_col.button("", icon=":material/restart_alt:", on_click=_reset_to_preset,
                         key=_key("reset"),
                         help="Reset: every setting back to the chosen preset (the device "
                              "stays). Choosing a preset in the list does the same.")
        preset_slot = st.empty()
        values["activation"] = _pick("Activation", "activation", ACTIVATIONS)
        scheme = _current("init_scheme", stored)
        values["init_constant"] = _init_constant_controls(scheme == "torch_default", errors)
        depth = int(_current("depth", stored))
        runnable = _deepest_runnable(stored)
        # The slider keeps the user's depth in range even when it is over budget (the page
        # says so); the caption states the budget's own limit.
        # At least 2: Streamlit refuses a slider whose range is a single value (an
        # exception box), and when nothing deeper runs the page says what to lower.
        deepest = max(runnable, depth, 2)
        # A slider's identity includes its range, so a new range makes a new widget that
        # would start at its minimum: hand it the current depth explicitly.
        ss[_key("depth")] = depth
        values["depth"] = int(st.slider("Depth (hidden layers)", 1, deepest, key=_key("depth"),
                                        help=HELP["depth"], on_change=_on_depth))
        depth_slot = st.empty()
        devices = available_devices()
        device_col, dtype_col = st.columns(2)
        with device_col:
            absent = "; ".join(f"{family}: {reason}" for family, reason in
                               unavailable_devices().items())
            values["device"] = _pick("Device", "device", devices,
                                     help=HELP["device"] + (f" Not here: {absent}."
                                                            if absent else ""))
        with dtype_col:
            values["dtype"] = _pick("Compute dtype", "dtype", DTYPES)
        col_a, col_b = st.columns(2)
        with col_a:
            values["impl_a"] = _pick("A (blue)", "impl_a", IMPLEMENTATIONS,
                                     format_func=_impl_label)
        with col_b:
            values["impl_b"] = _pick("B (orange)", "impl_b", IMPLEMENTATIONS,
                                     format_func=_impl_label)
        not_float32 = values["dtype"] != "float32"
        with col_a:
            values["emulate_a"] = _pick("Emulation A", "emulate_a", EMULATIONS,
                                        disabled=not_float32)
        with col_b:
            values["emulate_b"] = _pick("Emulation B", "emulate_b", EMULATIONS,
                                        disabled=not_float32)
        if not_float32:
            # The choices stay in the boxes (disabled) and come back with float32.
            values["emulate_a"] = values["emulate_b"] = "none"
            st.caption(f"Emulation rounds float32 operands, so it is off for "
                       f"{values['dtype']}; the choices above return with float32.")
        for family, reason in unavailable_devices().items():
            if family == "cuda":
                st.caption(safe_text(f"No CUDA here: {reason}. GPU TF32 convolutions are "
                                     f"emulated instead: set Emulation B to tf32."))
        if str(values["device"]) == "cpu":
            _cpu_precision_controls(values, stored)
        _variant_controls(values)
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
            widths = _widths(errors)
            values["widths"] = stored.settings["widths"] if widths is None else widths
            values["num_classes"] = _int_input("Classes (logits width)", "num_classes", 1,
                                               MAX_CLASSES)
            values["batch"] = _int_input("Batch B", "batch", 1, MAX_ROWS)
            values["samples"] = _int_input("Samples per row S", "samples", 1, MAX_ROWS)
            hidden = values["widths"] if len(values["widths"]) == values["depth"] \
                else default_widths(values["depth"])
            allowed = _budget_rows((values["input_dim"], *hidden, values["num_classes"]),
                                   values["dtype"], values["samples"],
                                   (values["emulate_a"], values["emulate_b"]))
            rows = values["batch"] * values["samples"]
            if allowed == 0:  # the parameters alone are over it: rows cannot help
                st.caption("The run budget allows no rows for these layer sizes: lower the "
                           "widths or the depth.")
            elif allowed is not None:
                st.caption(f"The run budget allows up to {min(allowed, MAX_ROWS):,} rows "
                           f"(B x S) for these layer sizes; now {rows:,}.")
            values["seed"] = _int_input("Seed", "seed", 0, MAX_WIDGET_INT)
            values["threads"] = _int_input("CPU threads", "threads", 0, 256)

    # Hidden widgets (CUDA switches off CUDA) keep the last view's values.
    for name in FIELD_NAMES:
        values.setdefault(name, ss.get(_key(name), stored.settings[name]))
    settings = Settings(tuple((name, values[name]) for name in FIELD_NAMES))
    caption, in_full = preset_caption(preset_name, settings)
    if caption:
        preset_slot.caption(safe_text(caption), help=safe_text(in_full, limit=900))
    depth_note = "Layers " + layers_text((values["input_dim"], *(
        values["widths"] or default_widths(values["depth"])), values["num_classes"]))
    if runnable < MAX_DEPTH:
        rows = values["batch"] * values["samples"]
        fits = _budget_rows(_layer_sizes_at(stored, 1), values["dtype"], values["samples"],
                            (values["emulate_a"], values["emulate_b"]))
        depth_note += (f"; budget: depth <= {runnable} at {rows:,} rows"
                       if fits is None or fits >= rows else
                       f"; budget: no depth fits at {rows:,} rows with these sizes")
    depth_slot.caption(safe_text(depth_note + "."))
    view = replace(stored, preset=preset_name, settings=settings,
                   taps=ss.get(_key("taps"), stored.taps))
    st.session_state[VIEW_KEY] = view
    if url_warnings:
        return SidebarResult(view, errors, url_warnings)
    pending = st.session_state.get(WARNINGS_KEY)
    # URL warnings stay up until the view is changed by hand.
    if pending and pending[1] == to_url(view):
        return SidebarResult(view, errors, list(pending[0]))
    return SidebarResult(view, errors, [])


TAPS_HELP = ("Which taps the by-layer charts show. pre: the affine layer's output W x + b; "
             "post: after the activation. The logits are the last pre tap.")


def view_controls() -> str:
    """The pre/post selector above the charts (part of the view, so it is in the URL). Its
    label is a caption beside it, not above it: a label line there would push the first
    chart below a projector's fold."""
    key = _key("taps")
    if st.session_state.get(key) not in TAP_STAGES:
        st.session_state[key] = "both"
    labels = {"both": "pre and post", "pre": "pre (W x + b)", "post": "post"}
    st.caption("**Taps shown**", help=TAPS_HELP, width="content")
    return st.radio("Taps shown", TAP_STAGES, key=key, horizontal=True,
                    format_func=labels.__getitem__, help=TAPS_HELP,
                    label_visibility="collapsed")


def write_url(view: ViewState) -> None:
    """Put the view in the address bar (only when it changed, to spare the browser)."""
    params = to_url(view)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    st.session_state[URL_KEY] = params


def explorer_config() -> tuple[ExperimentConfig, str, str | None]:
    """The Explorer's current settings as a config, for other pages (the sweep's base):
    (config, its preset, a note when the settings cannot run and another config stands in).
    """
    view: ViewState = st.session_state.get(VIEW_KEY, ViewState())
    if view.config is not None:
        return view.config, view.preset, None
    last = st.session_state.get(LAST_RUN_KEY)
    stand_in = last if last is not None else preset(view.preset)
    return stand_in, view.preset, (f"The Explorer's settings cannot run ({view.problem}); "
                                   "using the last settings that ran there.")
