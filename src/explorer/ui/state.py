"""The Explorer's view as a value, and its URL form: parse leniently, write minimally.

No Streamlit here: the URL is a mapping of strings in and out, so every rule (what a bad
value falls back to, what the warning says) is tested with plain pytest. Values from a URL
are only ever parsed as numbers, booleans or names from fixed lists; nothing is evaluated
or unpickled.

A view holds the *settings* as the user (or a link) set them, not a validated config: each
value is valid on its own, but together they may not run (over the run budget, widths that
do not match the depth). Then `view.config` is None and `view.problem` says what to lower,
and no setting is changed behind the user's back.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlencode

from explorer.config import (
    FIELD_TYPES,
    PRESETS,
    ExperimentConfig,
    check_field,
    config_from_strings,
    parse_field,
    parse_strings_lenient,
    preset,
    values_to_strings,
)
from explorer.devices import resolve_device

DEFAULT_PRESET = "seed"
TAP_STAGES = ("both", "pre", "post")
# Browsers hold integers exactly only up to 2^53 - 1; the seed widget cannot show more.
MAX_WIDGET_INT = 2**53 - 1
MAX_PARAM_LENGTH = 400
# A hand-made link can carry hundreds of bad keys; a page shows at most this many warnings.
MAX_WARNINGS = 10
# Unknown URL keys named in the one warning about them.
MAX_NAMED_KEYS = 5
VIEW_KEYS = ("taps", "hist", "pin")
_HIST_PATTERN = re.compile(r"^L(\d{1,2})-(pre|post)$")
FIELD_NAMES = tuple(f.name for f in dataclasses.fields(ExperimentConfig))


@dataclass(frozen=True)
class Settings:
    """Every config field as set, in field order. Each value is valid on its own (type and
    range); the combination is checked by ``config()``, once."""

    values: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, config: ExperimentConfig) -> Settings:
        return cls(tuple((name, getattr(config, name)) for name in FIELD_NAMES))

    def __getitem__(self, name: str) -> Any:
        return dict(self.values)[name]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)

    def replace(self, **changes: Any) -> Settings:
        merged = {**self.as_dict(), **changes}
        return Settings(tuple((name, merged[name]) for name in FIELD_NAMES))

    def config(self) -> ExperimentConfig:
        """The validated config; ValueError (naming what to change) when these cannot run."""
        return ExperimentConfig(**self.as_dict())


DEFAULT_SETTINGS = Settings.of(ExperimentConfig())


# How captions name each setting: the sidebar's words, short. Listed most decisive first (what
# changes the arithmetic, how each side executes, then the data and the network), so that a
# caption naming two changes and counting the rest ("and 3 more") names the ones that
# explain the numbers.
SETTING_NAMES = {
    "dtype": "dtype", "emulate_a": "emulation A", "emulate_b": "emulation B",
    "impl_a": "A", "impl_b": "B", "cpu_matmul_precision": "oneDNN matmul",
    "cpu_conv_precision": "oneDNN conv", "device": "device", "conv_tf32": "TF32 convs",
    "matmul_tf32": "TF32 matmuls", "rows_per_call_a": "rows per call A",
    "rows_per_call_b": "rows per call B", "threads_a": "threads A", "threads_b": "threads B",
    "threads": "CPU threads", "input_distribution": "input values",
    "activation": "activation", "init_scheme": "init", "init_constant": "init c",
    "depth": "depth", "widths": "widths", "input_dim": "input dim", "num_classes": "classes",
    "batch": "batch B", "samples": "samples S", "seed": "seed",
    "cudnn_deterministic": "cuDNN deterministic", "cudnn_benchmark": "cuDNN benchmark",
}
assert set(SETTING_NAMES) == set(FIELD_NAMES), "every setting needs a caption name"


def widths_text(widths: tuple[int, ...]) -> str:
    """'default', '64,128,256', '512 x6', '64,…,1024 (6 layers)': short, and never ending
    in a bare ellipsis that a following "and 2 more" would seem to continue."""
    if not widths:
        return "default"
    if len(widths) > 1 and len(set(widths)) == 1:
        return f"{widths[0]} x{len(widths)}"
    return abbreviated(widths, ",", limit=16, ends=1, layers=len(widths))


def abbreviated(sizes: tuple[int, ...], sep: str, limit: int, ends: int, layers: int) -> str:
    """``sizes`` joined by ``sep``, or, past ``limit`` characters, the first and last
    ``ends`` of them around an ellipsis with the layer count: '256-100-…-115-4 (17 layers)'."""
    joined = sep.join(map(str, sizes))
    if len(joined) <= limit:
        return joined
    head, tail = (sep.join(map(str, part)) for part in (sizes[:ends], sizes[-ends:]))
    return f"{head}{sep}…{sep}{tail} ({layers} layers)"


def differences(base: Settings, settings: Settings) -> list[str]:
    """The settings whose value differs from ``base``, each as "name value" (the new value),
    named as in SETTING_NAMES and in its order."""
    out = []
    for name in SETTING_NAMES:
        value = settings[name]
        if value != base[name]:
            shown = widths_text(value) if name == "widths" else (
                f"{value:g}" if isinstance(value, float) else value)
            out.append(f"{SETTING_NAMES[name]} {shown}")
    return out


def named_list(changes: list[str], limit: int = 2, item_chars: int = 28) -> str:
    """The first ``limit`` changes, each cut to ``item_chars``, then how many more: a
    caption that stays within two lines of the sidebar."""
    named = ", ".join(c if len(c) <= item_chars else c[:item_chars - 1] + "…"
                      for c in changes[:limit])
    return named + (f" and {len(changes) - limit} more" if len(changes) > limit else "")


@dataclass(frozen=True)
class ViewState:
    """Everything a URL pins down: the settings, the chart options and the pinned run."""

    preset: str = DEFAULT_PRESET
    settings: Settings = DEFAULT_SETTINGS
    taps: str = "both"  # which taps the by-layer charts show: both, pre or post
    hist: str = ""  # the histogram's tap as "L4-pre"; "" means the logits (whatever depth)
    pinned_preset: str | None = None
    pinned: ExperimentConfig | None = None  # the baseline the charts overlay, dashed

    @cached_property
    def _validated(self) -> tuple[ExperimentConfig | None, str | None]:
        try:
            return self.settings.config(), None
        except ValueError as err:
            return None, str(err)

    @property
    def config(self) -> ExperimentConfig | None:
        """The settings as a runnable config, or None when together they cannot run."""
        return self._validated[0]

    @property
    def problem(self) -> str | None:
        """Why the settings cannot run, naming what to lower; None when they can."""
        return self._validated[1]


def view_of(config: ExperimentConfig, preset_name: str = DEFAULT_PRESET, **options: Any
            ) -> ViewState:
    """A view showing this config (a convenience for pages and tests)."""
    return ViewState(preset=preset_name, settings=Settings.of(config), **options)


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


def tap_keys(depth: int) -> list[str]:
    """Every tap of a network with this many hidden layers, in order: L1-pre, L1-post, ...,
    L(depth+1)-pre (the logits)."""
    keys = []
    for layer in range(1, depth + 2):
        keys.append(hist_key(layer, "pre"))
        if layer <= depth:
            keys.append(hist_key(layer, "post"))
    return keys


def _check_seed(settings: Settings, where: str = "") -> tuple[Settings, list[str]]:
    if settings["seed"] <= MAX_WIDGET_INT:
        return settings, []
    default = ExperimentConfig().seed
    return settings.replace(seed=default), [
        f"{where}seed={settings['seed']} is larger than a browser can hold exactly "
        f"({MAX_WIDGET_INT}). Using seed={default} instead."]


def decode_settings(values: Mapping[str, str], where: str = ""
                    ) -> tuple[str, Settings, list[str]]:
    """(preset name, settings, warnings) from textual settings, decoded as a whole.

    Each value is checked on its own; a bad one falls back to the preset's value with a
    warning. The good ones are kept together even if they cannot run together: the view
    then says what to lower (see ViewState.problem).
    """
    values = dict(values)
    warnings: list[str] = []
    name = values.pop("preset", DEFAULT_PRESET)
    if name not in PRESETS:
        warnings.append(f"{where}preset={name!r} is unknown: choose one of "
                        f"{', '.join(PRESETS)}. Using preset={DEFAULT_PRESET!r} instead.")
        name = DEFAULT_PRESET
    base = preset(name)
    changes, problems = parse_strings_lenient(values, base)
    warnings += [where + p for p in problems]
    settings, problems = _check_seed(Settings.of(base).replace(**changes), where)
    warnings += problems
    return name, settings, warnings


def decode_config(values: Mapping[str, str], where: str = ""
                  ) -> tuple[str, ExperimentConfig | None, list[str]]:
    """(preset name, config, warnings); config is None when the settings cannot run."""
    name, settings, warnings = decode_settings(values, where)
    try:
        return name, settings.config(), warnings
    except ValueError as err:
        return name, None, [*warnings, f"{where}these settings cannot run: {err}"]


def encode_settings(preset_name: str, settings: Settings) -> dict[str, str]:
    """The preset (when not the forum case) plus the values that differ from it."""
    out = {} if preset_name == DEFAULT_PRESET else {"preset": preset_name}
    out.update(values_to_strings(settings.as_dict(), base=preset(preset_name)))
    return out


def encode_config(preset_name: str, config: ExperimentConfig) -> dict[str, str]:
    return encode_settings(preset_name, Settings.of(config))


def cap_warnings(warnings: list[str], limit: int = MAX_WARNINGS) -> list[str]:
    """At most `limit` warnings: the first ones, then one line counting the rest."""
    if len(warnings) <= limit:
        return warnings
    rest = len(warnings) - (limit - 1)
    return [*warnings[:limit - 1], f"... and {rest} more link settings were ignored."]


def split_params(params: Mapping[str, Any], own_keys: tuple[str, ...]
                 ) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Query parameters -> (config settings, the page's own keys, warnings).

    A repeated key keeps its last value (as Streamlit does); an overlong value and every
    unknown key are reported, the unknown ones in a single short warning however many there
    are, with the closest known name for a likely typo (the full list is on How to read
    this: a list of 30 names here would push the page's charts off the first screen).
    """
    known = ("preset", *FIELD_TYPES, *own_keys)
    settings: dict[str, str] = {}
    own: dict[str, str] = {}
    overlong: list[str] = []
    unknown: list[str] = []
    for key, value in params.items():
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else ""
        value = str(value)
        if len(value) > MAX_PARAM_LENGTH:
            overlong.append(f"{key[:40]!r} ({len(value)} characters)")
        elif key in own_keys:
            own[key] = value
        elif key in FIELD_TYPES or key == "preset":
            settings[key] = value
        else:
            unknown.append(key[:40])
    warnings: list[str] = []
    if overlong:
        warnings.append(f"URL value for {', '.join(overlong[:MAX_NAMED_KEYS])}"
                        f"{' and more' if len(overlong) > MAX_NAMED_KEYS else ''}: longer "
                        f"than {MAX_PARAM_LENGTH} characters; ignored.")
    if unknown:
        # Likely typos first (a known name is close), so one past the first few is named.
        described = [_with_suggestion(key, known) for key in unknown]
        described.sort(key=lambda text: "(did you mean" not in text)
        named = ", ".join(described[:MAX_NAMED_KEYS])
        more = f" and {len(unknown) - MAX_NAMED_KEYS} more" if len(unknown) > MAX_NAMED_KEYS \
            else ""
        # One line at 1280 px for a typo or two: a longer box pushes the charts down.
        what = (f"{named} is unknown" if len(unknown) == 1
                else f"{len(unknown)} URL parameters are unknown: {named}{more}")
        warnings.append(f"{what}; How to read this lists the names.")
    return settings, own, warnings


def _with_suggestion(key: str, known: tuple[str, ...]) -> str:
    """"'activaton' (did you mean 'activation'?)", or just "'zzz'"."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)


def _decode_pin(text: str) -> tuple[str | None, ExperimentConfig | None, list[str]]:
    """The pinned run from its URL value. Any problem pins nothing, in one warning: a
    half-understood pin would overlay a run nobody chose."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=64)
    except ValueError:
        return None, None, ["pin has too many settings; no run is pinned."]
    values = dict(pairs)
    problems = [] if values else ["it names no settings"]
    name = values.pop("preset", DEFAULT_PRESET)
    if name not in PRESETS:
        problems.append(f"preset={name!r} is unknown")
        name = DEFAULT_PRESET
    unknown = [k for k in values if k not in FIELD_TYPES]
    if unknown:
        problems.append(f"{', '.join(repr(k[:40]) for k in unknown[:MAX_NAMED_KEYS])} "
                        f"{'is' if len(unknown) == 1 else 'are'} not a setting")
    changes = {}
    for key, value_text in values.items():
        if key in unknown:
            continue
        try:
            changes[key] = parse_field(key, value_text)
            check_field(key, changes[key])
        except ValueError as err:
            problems.append(str(err))
    config = None
    if not problems:
        try:
            config = config_from_strings(values, base=preset(name))
            if config.device != "cpu":
                resolve_device(config.device)
        except ValueError as err:
            problems.append(f"these settings cannot run: {err}")
        else:
            if config.seed > MAX_WIDGET_INT:
                problems.append(f"seed={config.seed} is larger than a browser can hold")
    if problems:
        return None, None, [f"pin={text[:80]!r} was not used, so no run is pinned: "
                            + "; ".join(problems[:3])]
    return name, config, []


def parse_url(params: Mapping[str, Any]) -> tuple[ViewState, list[str]]:
    """A ViewState from query parameters, and the warnings about values that were not used
    (at most MAX_WARNINGS of them)."""
    settings_text, view, warnings = split_params(params, VIEW_KEYS)
    preset_name, settings, problems = decode_settings(settings_text)
    warnings += problems
    # The sidebar turns emulation off for any dtype but float32 (it rounds float32
    # operands); a link asking for both would otherwise lose the emulation silently.
    for name in ("emulate_a", "emulate_b"):
        if name in settings_text and settings[name] != "none" \
                and settings["dtype"] != "float32":
            warnings.append(f"{name}={settings[name]!r} is off: emulation rounds float32 "
                            f"operands, and dtype is {settings['dtype']}. Set dtype=float32 "
                            f"to use it.")

    taps = view.get("taps", "both")
    if taps not in TAP_STAGES:
        warnings.append(f"taps={taps!r} is not allowed: choose one of {', '.join(TAP_STAGES)}. "
                        f"Using taps='both' instead.")
        taps = "both"
    hist = view.get("hist", "")
    if hist and hist not in tap_keys(settings["depth"]):
        reason = ("is not a tap name like 'L4-pre'" if parse_hist(hist) is None else
                  f"names no tap of a network with depth {settings['depth']}")
        warnings.append(f"hist={hist!r} {reason}. Showing the logits' histogram instead.")
        hist = ""
    pinned_preset = pinned = None
    if "pin" in view:
        pinned_preset, pinned, problems = _decode_pin(view["pin"])
        warnings += problems
    return (ViewState(preset_name, settings, taps, hist, pinned_preset, pinned),
            cap_warnings(warnings))


def to_url(view: ViewState) -> dict[str, str]:
    """Query parameters for a view: only what differs from the defaults, so links stay short."""
    out = encode_settings(view.preset, view.settings)
    if view.taps != "both":
        out["taps"] = view.taps
    if view.hist:
        out["hist"] = view.hist
    if view.pinned is not None:
        out["pin"] = urlencode(encode_config(view.pinned_preset or DEFAULT_PRESET,
                                             view.pinned)) or "preset=seed"
    return out
