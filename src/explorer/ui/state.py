"""The Explorer's view as a value, and its URL form: parse leniently, write minimally.

No Streamlit here: the URL is a mapping of strings in and out, so every rule (what a bad
value falls back to, what the warning says) is tested with plain pytest. Values from a URL
are only ever parsed as numbers, booleans or names from fixed lists; nothing is evaluated
or unpickled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from explorer.config import (
    FIELD_TYPES,
    PRESETS,
    ExperimentConfig,
    config_from_strings_lenient,
    config_to_strings,
    preset,
)

DEFAULT_PRESET = "seed"
TAP_STAGES = ("both", "pre", "post")
# Browsers hold integers exactly only up to 2^53 - 1; the seed widget cannot show more.
MAX_WIDGET_INT = 2**53 - 1
MAX_PARAM_LENGTH = 400
_HIST_PATTERN = re.compile(r"^L(\d{1,2})-(pre|post)$")


@dataclass(frozen=True)
class ViewState:
    """Everything a URL pins down: the settings, the chart options and the pinned run."""

    preset: str = DEFAULT_PRESET
    config: ExperimentConfig = field(default_factory=ExperimentConfig)
    taps: str = "both"  # which taps the by-layer charts show: both, pre or post
    hist: str = ""  # the histogram's tap as "L4-pre"; "" means the logits
    pinned_preset: str | None = None
    pinned: ExperimentConfig | None = None  # the baseline the charts overlay, dashed


def safe_text(text: object, limit: int = 300) -> str:
    """Text from outside (a URL, an error naming a URL value) made inert for Markdown.

    Every ASCII punctuation character is backslash-escaped, so HTML, links, images,
    emphasis, LaTeX and Streamlit's :colour[...] directives all show as typed.
    """
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[:limit] + "..."
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", s)


def hist_key(layer: int, stage: str) -> str:
    return f"L{layer}-{stage}"


def parse_hist(text: str) -> tuple[int, str] | None:
    match = _HIST_PATTERN.match(text)
    return (int(match.group(1)), match.group(2)) if match else None


def _check_seed(config: ExperimentConfig, where: str = "") -> tuple[ExperimentConfig, list[str]]:
    if config.seed <= MAX_WIDGET_INT:
        return config, []
    return config.replace(seed=ExperimentConfig().seed), [
        f"{where}seed={config.seed} is larger than a browser can hold exactly "
        f"({MAX_WIDGET_INT}). Using seed={ExperimentConfig().seed} instead."]


def decode_config(values: Mapping[str, str], where: str = ""
                  ) -> tuple[str, ExperimentConfig, list[str]]:
    """(preset name, config, warnings) from textual settings; bad values fall back."""
    values = dict(values)
    warnings: list[str] = []
    name = values.pop("preset", DEFAULT_PRESET)
    if name not in PRESETS:
        warnings.append(f"{where}preset={name!r} is unknown: choose one of "
                        f"{', '.join(PRESETS)}. Using preset={DEFAULT_PRESET!r} instead.")
        name = DEFAULT_PRESET
    config, problems = config_from_strings_lenient(values, base=preset(name))
    warnings += [where + p for p in problems]
    # An unavailable device already fell back to cpu (with its reason) in the lenient parser.
    config, problems = _check_seed(config, where)
    warnings += problems
    return name, config, warnings


def encode_config(preset_name: str, config: ExperimentConfig) -> dict[str, str]:
    """The preset (when not the forum case) plus the fields that differ from it."""
    out = {} if preset_name == DEFAULT_PRESET else {"preset": preset_name}
    out.update(config_to_strings(config, base=preset(preset_name)))
    return out


def parse_url(params: Mapping[str, str]) -> tuple[ViewState, list[str]]:
    """A ViewState from query parameters, and one warning per value that was not used."""
    warnings: list[str] = []
    settings: dict[str, str] = {}
    view: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, (list, tuple)):  # repeated key: the last one wins, as in st
            value = value[-1] if value else ""
        value = str(value)
        if len(value) > MAX_PARAM_LENGTH:
            warnings.append(f"URL value for {key[:40]!r} is {len(value)} characters long; "
                            f"ignored.")
            continue
        if key in FIELD_TYPES or key == "preset":
            settings[key] = value
        elif key in ("taps", "hist", "pin"):
            view[key] = value
        else:
            warnings.append(f"URL parameter {key[:40]!r} is unknown and was ignored. Known: "
                            f"preset, {', '.join(FIELD_TYPES)}, taps, hist, pin.")
    preset_name, config, problems = decode_config(settings)
    warnings += problems

    taps = view.get("taps", "both")
    if taps not in TAP_STAGES:
        warnings.append(f"taps={taps!r} is not allowed: choose one of {', '.join(TAP_STAGES)}. "
                        f"Using taps='both' instead.")
        taps = "both"
    hist = view.get("hist", "")
    if hist and parse_hist(hist) is None:
        warnings.append(f"hist={hist!r} is not a tap name like 'L4-pre'. Showing the "
                        f"logits' histogram instead.")
        hist = ""
    pinned_preset = pinned = None
    if "pin" in view:
        try:
            pairs = parse_qsl(view["pin"], keep_blank_values=True, max_num_fields=64)
        except ValueError:
            warnings.append("pin has too many settings; no run is pinned.")
        else:
            pinned_preset, pinned, problems = decode_config(dict(pairs), where="pinned run: ")
            warnings += problems
    return ViewState(preset_name, config, taps, hist, pinned_preset, pinned), warnings


def to_url(view: ViewState) -> dict[str, str]:
    """Query parameters for a view: only what differs from the defaults, so links stay short."""
    out = encode_config(view.preset, view.config)
    if view.taps != "both":
        out["taps"] = view.taps
    if view.hist:
        out["hist"] = view.hist
    if view.pinned is not None:
        out["pin"] = urlencode(encode_config(view.pinned_preset or DEFAULT_PRESET,
                                             view.pinned)) or "preset=seed"
    return out
