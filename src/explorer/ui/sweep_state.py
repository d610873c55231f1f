"""The sweep page's view as a value, and its URL form. No Streamlit here.

URL keys: ``x`` and ``y`` hold axis specs in the sweep syntax (``init-constant=1e-4:10:9``;
``y`` may be ``none``), ``metric`` a Summary metric name, and ``preset`` plus any config
field the base config of every cell (as on the Explorer page). A bad value falls back to the
default and comes back as a warning; values are only parsed, never evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from explorer.config import FIELD_TYPES, ExperimentConfig, preset
from explorer.sweep import AXES, METRICS, check_axes, check_metric, parse_axis
from explorer.ui.state import DEFAULT_PRESET, MAX_PARAM_LENGTH, decode_config, encode_config

# What a person gets when picking an axis: a useful first range for each.
DEFAULT_VALUES: dict[str, str] = {
    "init-constant": "1e-4:10:9",
    "activation": "elu,sigmoid,tanh,relu,gelu",
    "depth": "1:8",
    "dtype": "float32,float16,bfloat16",
    "impls": "linear/conv2d,linear/conv1d,linear/matmul,linear/tensordot",
    "emulate-a": "none,tf32,bf16,fp16",
    "emulate-b": "none,tf32,bf16,fp16",
    "emulate-both": "none,tf32,bf16,fp16",
    "rows-per-call-a": "1:64:x2,whole",
    "rows-per-call-b": "1:64:x2,whole",
    "threads-a": "1,2",
    "threads-b": "1,2",
}
DEFAULT_X = "init-constant=" + DEFAULT_VALUES["init-constant"]
DEFAULT_Y = "activation=elu,sigmoid,tanh"
DEFAULT_METRIC = "max_rel_diff"
NO_AXIS = "none"
URL_KEYS = ("x", "y", "metric")


@dataclass(frozen=True)
class SweepView:
    preset: str = DEFAULT_PRESET
    config: ExperimentConfig = field(default_factory=lambda: preset(DEFAULT_PRESET))
    x: str = DEFAULT_X  # canonical axis spec
    y: str = DEFAULT_Y  # canonical axis spec, or "" for a single row
    metric: str = DEFAULT_METRIC


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
    """A SweepView from query parameters, and one warning per value that was not used."""
    warnings: list[str] = []
    settings: dict[str, str] = {}
    own: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, (list, tuple)):  # repeated key: the last one wins
            value = value[-1] if value else ""
        value = str(value)
        if len(value) > MAX_PARAM_LENGTH:
            warnings.append(f"URL value for {key[:40]!r} is {len(value)} characters long; "
                            "ignored.")
        elif key in URL_KEYS:
            own[key] = value
        elif key in FIELD_TYPES or key == "preset":
            settings[key] = value
        else:
            warnings.append(f"URL parameter {key[:40]!r} is unknown and was ignored. Known: "
                            f"x, y, metric, preset and the settings "
                            f"({', '.join(FIELD_TYPES)}).")
    preset_name, config, problems = decode_config(settings)
    warnings += problems
    if config is None:  # the link's base cannot run: its preset instead (said above)
        config = preset(preset_name)

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
    return SweepView(preset_name, config, x, y, metric), warnings


def sweep_to_url(view: SweepView) -> dict[str, str]:
    """x, y and metric always (a pasted link must say what it sweeps), then the base."""
    out = {"x": view.x, "y": view.y or NO_AXIS, "metric": view.metric}
    out.update(encode_config(view.preset, view.config))
    return out


def axis_names() -> tuple[str, ...]:
    return tuple(AXES)


def metric_names() -> tuple[str, ...]:
    return tuple(METRICS)
