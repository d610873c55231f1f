"""A side: how one of the two networks computes. Kernel, operand format, rows per call,
threads, compiled or eager are all properties of a side, read from the config in one place.

``compare.run`` iterates over the two sides; titles, verdict sentences, the CLI table and
the export describe a side with the same words from here, so "one row per call" reads the
same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from explorer.config import ExperimentConfig

SIDE_NAMES = ("a", "b")

# What each implementation is, in a title ("Why do nn.Linear and a 1x1 Conv2d differ?").
IMPLEMENTATION_NAMES = {
    "linear": "nn.Linear", "conv2d": "a 1x1 Conv2d", "conv1d": "a kernel-1 Conv1d",
    "tensordot": "tensordot", "matmul": "x @ W.T + b",
    "linear_compiled": "nn.Linear under torch.compile",
}


@dataclass(frozen=True)
class Side:
    """How one side computes the shared network."""

    name: str  # "a" or "b"
    implementation: str
    emulation: str = "none"  # operand rounding before each product (tf32, bf16, fp16)
    rows_per_call: int = 0  # rows per kernel call; 0 = the whole batch in one call
    threads: int = 0  # this side's intra-op threads; 0 = the run's ``threads`` setting

    @property
    def letter(self) -> str:
        return self.name.upper()

    @property
    def compiled(self) -> bool:
        return self.implementation.endswith("_compiled")

    def threads_setting(self, run_threads: int) -> int:
        """The thread setting this side runs with (0 still means the process default)."""
        return self.threads or run_threads


def sides(config: "ExperimentConfig") -> tuple[Side, Side]:
    """A and B of a config."""
    return (Side("a", config.impl_a, config.emulate_a, config.rows_per_call_a,
                 config.threads_a),
            Side("b", config.impl_b, config.emulate_b, config.rows_per_call_b,
                 config.threads_b))


def side(config: "ExperimentConfig", name: str) -> Side:
    return sides(config)[SIDE_NAMES.index(name)]


# ---------------------------------------------------------------------------------------
# Words

def rows_words(rows_per_call: int, rows: int | None = None) -> str:
    """'whole batch', 'one row per call', '8 rows per call'."""
    if rows_per_call == 0 or (rows is not None and rows_per_call >= rows):
        return "whole batch"
    if rows_per_call == 1:
        return "one row per call"
    return f"{rows_per_call} rows per call"


def threads_words(setting: int, in_effect: int | None = None) -> str:
    """'1 thread', '4 threads', 'default threads' (with the count when it is known)."""
    if setting == 0:
        return f"default threads ({in_effect})" if in_effect else "default threads"
    return "1 thread" if setting == 1 else f"{setting} threads"


def variant_words(config: "ExperimentConfig", name: str, *, every: bool = False,
                  threads_in_effect: dict[str, int] | None = None) -> list[str]:
    """The variant settings of one side, in words: only those in which A and B differ
    (what tells them apart), or with ``every`` also those they share (non-default only)."""
    a, b = sides(config)
    me = a if name == "a" else b
    words = []
    if a.rows_per_call != b.rows_per_call or (every and me.rows_per_call):
        words.append(rows_words(me.rows_per_call, config.rows))
    mine, theirs = (s.threads_setting(config.threads) for s in (me, b if me is a else a))
    if mine != theirs or (every and mine):
        count = (threads_in_effect or {}).get(name)
        words.append(threads_words(mine, count))
    return words


def side_label(config: "ExperimentConfig", name: str, *, emulation: bool = False) -> str:
    """'A (linear)', 'B (linear, one row per call)', 'B (conv2d, tf32)' (with emulation)."""
    me = side(config, name)
    parts = [me.implementation]
    if emulation and me.emulation != "none":
        parts.append(me.emulation)
    parts += variant_words(config, name)
    return f"{me.letter} ({', '.join(parts)})"


def _side_words(config: "ExperimentConfig", name: str) -> list[str]:
    me = side(config, name)
    words = variant_words(config, name)
    if me.emulation != "none":
        words.append(f"{me.emulation} operands")
    return words


def _side_title(config: "ExperimentConfig", name: str, emulation: bool = True) -> str:
    words = _side_words(config, name) if emulation else variant_words(config, name)
    base = IMPLEMENTATION_NAMES[side(config, name).implementation]
    return f"{base} ({', '.join(words)})" if words else base


# A title wider than this wraps at 1280 px beside the sidebar (measured: 61 ordinary
# characters fit; "Why do x @ W.T + b and nn.Linear under torch.compile differ?", 60
# characters with wide ones, did not). Width in ordinary characters: see title_width.
TITLE_CHARS = 58
_WIDE_GLYPHS = frozenset("@WMmw%")
# The shortest names, for titles that do not fit otherwise.
SHORT_NAMES = {"linear": "nn.Linear", "conv2d": "Conv2d", "conv1d": "Conv1d",
               "tensordot": "tensordot", "matmul": "matmul",
               "linear_compiled": "compiled nn.Linear"}


def title_width(text: str) -> float:
    """Roughly how many ordinary characters wide ``text`` is in the title font."""
    return len(text) + 0.5 * sum(c in _WIDE_GLYPHS for c in text)


def title(config: "ExperimentConfig") -> str:
    """What is compared with what, short enough for one line at 1280 px: 'Why do nn.Linear
    and a 1x1 Conv2d differ?'; one implementation run two ways: 'nn.Linear: whole batch vs
    one row per call', 'nn.Linear: eager vs torch.compile'; '... against itself' when
    nothing tells the sides apart."""
    a, b = _side_title(config, "a"), _side_title(config, "b")
    impl_a, impl_b = config.impl_a, config.impl_b
    short = [SHORT_NAMES[impl_a], SHORT_NAMES[impl_b]]
    if a == b:
        return _first_fitting([f"{a} against itself", f"{short[0]} against itself"])
    words_a, words_b = _side_words(config, "a"), _side_words(config, "b")
    if {impl_a, impl_b} == {"linear", "linear_compiled"} and not (words_a or words_b):
        order = ("eager", "torch.compile")[::1 if impl_a == "linear" else -1]
        return f"nn.Linear: {order[0]} vs {order[1]}"
    if impl_a == impl_b:
        plain = f"{config.dtype} operands"
        # Without the emulated formats, what tells the sides apart is how they execute.
        runs = [variant_words(config, n) for n in ("a", "b")]
        return _first_fitting([
            f"{name}: {', '.join(words_a) or plain} vs {', '.join(words_b) or plain}"
            for name in (IMPLEMENTATION_NAMES[impl_a], short[0])
        ] + ([f"{short[0]}: {', '.join(runs[0])} vs {', '.join(runs[1])}"]
             if all(runs) else [])
          + [f"{short[0]}: two ways"])
    # Too long for one line at 1280 px: first without the emulated formats, then the
    # implementations only; the settings line under the title says how each side computes.
    without_emulation = [_side_title(config, n, emulation=False) for n in ("a", "b")]
    plain_names = [IMPLEMENTATION_NAMES[impl_a], IMPLEMENTATION_NAMES[impl_b]]
    return _first_fitting([f"Why do {first} and {second} differ?" for first, second in
                           ((a, b), without_emulation, plain_names, short)])


def _first_fitting(titles: list[str]) -> str:
    """The first title that fits one line at 1280 px, else the last (the shortest)."""
    return next((t for t in titles if title_width(t) <= TITLE_CHARS), titles[-1])


def settings_words(config: "ExperimentConfig") -> str:
    """Every non-default variant setting of both sides, for a settings line ('' if none)."""
    parts = []
    for me in sides(config):
        words = []
        if me.rows_per_call:
            words.append(rows_words(me.rows_per_call, config.rows))
        if me.threads:
            words.append(threads_words(me.threads))
        if words:
            parts.append(f"{me.letter} {', '.join(words)}")
    return "; ".join(parts)


def emulation_words(config: "ExperimentConfig") -> str:
    """', A in tf32, B in bf16': each side whose operands are rounded to a narrower format
    (the settings line under the Explorer's title and the sweep's base caption)."""
    return "".join(f", {side} in {mode}" for side, mode in
                   (("A", config.emulate_a), ("B", config.emulate_b)) if mode != "none")
