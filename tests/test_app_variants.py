"""AppTest for the execution variants: sidebar controls, URL, title, the predictions card."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from explorer import ExperimentConfig, preset, run
from explorer.precision import DEFAULT_THREADS

APP = str(Path(__file__).resolve().parent.parent / "app.py")
OTHER = 1 if DEFAULT_THREADS != 1 else 2


def fresh(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    if query:
        at.query_params.update(query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def captions(at: AppTest) -> str:
    return " ".join(c.value.replace("\\", "") for c in at.caption)


def test_the_predictions_card_shows_the_runs_numbers():
    at = fresh()
    expected = run(preset("seed")).summary
    card = next(m for m in at.metric if m.label == "Flips")
    assert card.value == f"{expected.argmax_flips} of {expected.argmax_rows}"
    assert "all tied in A" in str(card.proto.delta)


def test_rows_per_call_control_changes_title_url_and_caption():
    at = fresh()
    at.sidebar.number_input(key="ex.rows_per_call_b").set_value(1)
    at.run()
    assert not at.exception and not at.error
    assert at.query_params.get("rows_per_call_b") == "1"
    # The title would take two lines with the variant in it; the settings line names it.
    assert at.subheader[0].value == "Why do nn.Linear and a 1x1 Conv2d differ?"
    assert "B one row per call" in captions(at)


def test_threads_control_records_each_sides_count():
    at = fresh()
    at.sidebar.number_input(key="ex.threads_a").set_value(OTHER)
    at.run()
    assert not at.exception and not at.error
    assert at.query_params.get("threads_a") == str(OTHER)
    assert f"threads in effect: A {OTHER}, B {DEFAULT_THREADS}" in captions(at)


def test_a_variant_preset_link_opens_on_its_question():
    at = fresh({"preset": "batch_invariance"})
    assert at.subheader[0].value == "nn.Linear: whole batch vs one row per call"
    assert at.sidebar.number_input(key="ex.rows_per_call_b").value == 1
    assert at.sidebar.selectbox(key="ex.impl_b").value == "linear"


def test_a_bad_variant_in_a_link_falls_back_with_a_warning():
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update({"rows_per_call_b": "-2", "threads_a": "many"})
    at.run()
    assert not at.exception
    warnings = " ".join(w.value.replace("\\", "") for w in at.warning)
    assert "rows_per_call_b=-2" in warnings and "threads_a" in warnings
    assert at.sidebar.number_input(key="ex.rows_per_call_b").value == 0


def test_a_long_settings_line_is_cut_to_two_lines_with_the_whole_in_its_help():
    from explorer.ui.render import SETTINGS_CAPTION_CHARS, settings_line

    widths = ",".join(str(w) for w in range(100, 116))
    at = fresh({"emulate_a": "bf16", "emulate_b": "tf32", "impl_b": "conv1d",
                "rows_per_call_a": "3", "threads_b": "1", "depth": "16", "widths": widths})
    assert not at.exception and not at.error
    config = ExperimentConfig(emulate_a="bf16", emulate_b="tf32", impl_b="conv1d",
                              rows_per_call_a=3, threads_b=1, depth=16,
                              widths=tuple(range(100, 116)))
    full = settings_line(config)
    caption = next(c for c in at.main.caption
                   if c.value.replace("\\", "").startswith("A = linear (blue)"))
    shown = caption.value.replace("\\", "")
    assert shown.endswith(" …") and len(shown) <= SETTINGS_CAPTION_CHARS + 1
    assert full.replace("\\", "") in caption.help.replace("\\", "")
    assert "threads in effect: A " in caption.help.replace("\\", "")  # what the run found
