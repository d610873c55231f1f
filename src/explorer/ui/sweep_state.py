"""The sweep page's view as a value, and its URL form. No Streamlit here.

URL keys: ``x`` and ``y`` hold axis specs in the sweep syntax (``init-constant=1e-4:10:6``;
``y`` may be ``none``), ``metric`` a Summary metric name, and ``preset`` plus any config
field the base config of every cell (as on the Explorer page). A bad value falls back to the
default and comes back as a warning; values are only parsed, never evaluated.

The URL holds the sweep that is on screen (the last one run), with its base config spelled
out, so a pasted link shows the same grid whatever the recipient's Explorer holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from explorer.config import PRESETS, ExperimentConfig, field_text, preset
from explorer.sweep import AXES, METRICS, check_axes, check_metric, parse_axis
from explorer.ui.state import (
    DEFAULT_PRESET,
    FIELD_NAMES,
    cap_warnings,
    decode_config,
    decode_settings,
    encode_config,
    split_params,
)

# What a person gets when picking an axis: a useful first range for each.
DEFAULT_VALUES: dict[str, str] = {
    "init-constant": "1e-4:10:6",
    "activation": "elu,sigmoid,tanh,relu,gelu",
    "depth": "1:6",
    "dtype": "float32,float16,bfloat16",
    "impls": "linear/conv2d,linear/conv1d,linear/matmul,linear/tensordot",
    "emulate-a": "none,tf32,bf16,fp16",
    "emulate-b": "none,tf32,bf16",
    "emulate-both": "none,tf32,bf16,fp16",
    "rows-per-call-a": "1:64:x2,whole",
    "rows-per-call-b": "1:64:x2,whole",
    "threads-a": "1,2",
    "threads-b": "1,2",
}
# The first sweep anyone sees: how far each operand format breaks the float32 rounding bound
# as the weights grow. Rows differ by orders of magnitude (none stays below 1, tf32 and
# bf16 go far above), unlike activations, whose rows coincide where layer 1 decides the max.
DEFAULT_X = "init-constant=" + DEFAULT_VALUES["init-constant"]
DEFAULT_Y = "emulate-b=" + DEFAULT_VALUES["emulate-b"]
DEFAULT_METRIC = "max_bound_ratio"
NO_AXIS = "none"
URL_KEYS = ("x", "y", "metric")
# Where the base config of every cell comes from: the Explorer's current settings, a
# preset (its name), or a pasted link's settings.
FROM_EXPLORER = "explorer"
FROM_LINK = "link"


@dataclass(frozen=True)
class SweepView:
    preset: str = DEFAULT_PRESET
    config: ExperimentConfig = field(default_factory=lambda: preset(DEFAULT_PRESET))
    x: str = DEFAULT_X  # canonical axis spec
    y: str = DEFAULT_Y  # canonical axis spec, or "" for a single row
    metric: str = DEFAULT_METRIC
    base: str = FROM_EXPLORER  # FROM_EXPLORER, FROM_LINK or a preset name


def base_choices() -> tuple[str, ...]:
    return (FROM_EXPLORER, *PRESETS)


def split_spec(spec: str) -> tuple[str, str]:
    """'init-constant=1e-4:10:9' -> ('init-constant', '1e-4:10:9'); '' -> ('none', '')."""
    if not spec:
        return NO_AXIS, ""
    name, _, values = spec.partition("=")
    return name, values


def canonical(spec: str) -> str:
    """The spec as parse_axis writes it (raises ValueError when it does not parse)."""
    return parse_axis(spec).spec


def parse_sweep_url(params: Mapping[str, object]) -> tuple[SweepView, list[str]]:
    """A SweepView from query parameters, and the warnings about values not used."""
    settings, own, warnings = split_params(params, URL_KEYS)
    preset_name, config, problems = decode_config(settings)
    warnings += problems
    if config is None:  # the link's base cannot run: keep what can (said in the warnings)
        config, note = _runnable_base(settings)
        warnings.append(note)
    # A link naming only a preset sweeps over that preset; otherwise over its own settings.
    base = preset_name if config == preset(preset_name) else FROM_LINK

    x, y = DEFAULT_X, DEFAULT_Y
    if "x" in own:
        try:
            x = canonical(own["x"])
        except ValueError as err:
            warnings.append(f"x: {err} Using x={DEFAULT_X!r} instead.")
    if "y" in own:
        if own["y"].strip().lower() in ("", NO_AXIS):
            y = ""
        else:
            try:
                y = canonical(own["y"])
            except ValueError as err:
                warnings.append(f"y: {err} Using y={DEFAULT_Y!r} instead.")
    try:
        check_axes(parse_axis(x), parse_axis(y) if y else None)
    except ValueError as err:
        warnings.append(f"{err} Using x={DEFAULT_X!r} and y={DEFAULT_Y!r} instead.")
        x, y = DEFAULT_X, DEFAULT_Y

    metric = own.get("metric", DEFAULT_METRIC)
    try:
        check_metric(metric)
    except ValueError as err:
        warnings.append(f"{err} Using metric={DEFAULT_METRIC!r} instead.")
        metric = DEFAULT_METRIC
    return SweepView(preset_name, config, x, y, metric, base), cap_warnings(warnings)


# What makes a base too large or its layer sizes inconsistent: when a link's base cannot
# run, these go back to the preset's values and everything else the link set stays.
SIZE_FIELDS = ("batch", "samples", "depth", "widths", "input_dim", "num_classes")


def _runnable_base(settings: Mapping[str, str]) -> tuple[ExperimentConfig, str]:
    """A base for a link whose settings cannot run together: the link's settings with its
    sizes taken from the preset, or (when even those cannot run) the preset itself; and a
    sentence saying which of the link's values the sweep does not use, and what it keeps."""
    preset_name, decoded, _ = decode_settings(settings)  # its warnings are already out
    base = preset(preset_name)
    given = [name for name in FIELD_NAMES if name in settings]
    replaced = [name for name in SIZE_FIELDS
                if name in given and decoded[name] != getattr(base, name)]
    try:
        config = decoded.replace(**{name: getattr(base, name) for name in SIZE_FIELDS}).config()
    except ValueError as err:
        listed = ", ".join(f"{name}={_as_text(decoded[name])}" for name in given)
        return base, (f"The sweep's base is the preset: even with the preset's sizes the "
                      f"link's settings cannot run ({err}), so it does not use the link's "
                      f"{listed}.")
    kept = ", ".join(f"{name}={_as_text(decoded[name])}" for name in given
                     if name not in replaced)
    if not replaced:  # a size the link did not name (widths reset by its depth) differed
        return config, f"The sweep's base takes the preset's sizes and keeps the link's {kept}."
    dropped = ", ".join(f"{name}={_as_text(decoded[name])}" for name in replaced)
    instead = ", ".join(f"{name}={_as_text(getattr(base, name))}" for name in replaced)
    sentence = f"The sweep's base uses the preset's {instead} instead of the link's {dropped}"
    return config, sentence + (f", and keeps the link's {kept}." if kept else ".")


def _as_text(value: object) -> str:
    return field_text(value) if value != () else "() (one default width per layer)"


def sweep_to_url(view: SweepView) -> dict[str, str]:
    """x, y and metric always (a pasted link must say what it sweeps), then the base."""
    out = {"x": view.x, "y": view.y or NO_AXIS, "metric": view.metric}
    out.update(encode_config(view.preset, view.config))
    return out


def same_sweep(a: SweepView | None, b: SweepView | None) -> bool:
    """Whether two views compute the same grid (where their base came from aside)."""
    return a is not None and b is not None and (a.config, a.x, a.y, a.metric) == (
        b.config, b.x, b.y, b.metric)


def axis_names() -> tuple[str, ...]:
    return tuple(AXES)


def metric_names() -> tuple[str, ...]:
    return tuple(METRICS)
