"""The execution-variant fields of ExperimentConfig: validated, bounded in kernel calls,
round-tripped through text (CLI flags, URL) and leniently parsed."""

import pytest

from explorer import ExperimentConfig
from explorer.config import config_from_strings, config_from_strings_lenient, config_to_strings
from explorer.limits import kernel_calls
from explorer.ui.state import parse_url, to_url, view_of


@pytest.mark.parametrize("changes, fragments", [
    ({"rows_per_call_a": -1}, ("rows_per_call_a=-1", "from 0 to 65536")),
    ({"rows_per_call_b": 1.5}, ("rows_per_call_b=1.5", "whole number")),
    ({"threads_b": 300}, ("threads_b=300", "from 0 to 256")),
    ({"threads_a": True}, ("threads_a=True",)),
    ({"impl_a": "linear_compiled_twice"}, ("impl_a='linear_compiled_twice'", "linear_compiled")),
])
def test_bad_values_are_named_with_the_range(changes, fragments):
    with pytest.raises(ValueError) as err:
        ExperimentConfig(**changes)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_kernel_calls_are_counted_and_bounded(monkeypatch):
    # 80 rows, 4 layers: A 4 calls; B one row per call: 4 x 80 own + 3 x 80 local.
    assert kernel_calls(ExperimentConfig(rows_per_call_b=1)) == 4 + 7 * 80
    assert kernel_calls(ExperimentConfig(rows_per_call_a=3)) == 4 * 27 + 7
    assert kernel_calls(ExperimentConfig(rows_per_call_a=80, rows_per_call_b=500)) == 4 + 7
    small = dict(input_dim=4, widths=(4,), depth=1, num_classes=2, batch=20000, samples=1)
    with pytest.raises(ValueError, match=r"makes 60,002 kernel calls .* over the 50,000 "
                                         r"budget. Raise rows per call"):
        ExperimentConfig(**small, rows_per_call_b=1)
    monkeypatch.setenv("EXPLORER_MAX_CALLS", "1e5")
    assert ExperimentConfig(**small, rows_per_call_b=1).rows_per_call_b == 1


def test_text_round_trip_and_lenient_fallback():
    config = ExperimentConfig(impl_b="linear_compiled", rows_per_call_a=8, rows_per_call_b=1,
                              threads_a=1, threads_b=2)
    text = config_to_strings(config)
    assert text == {"impl_b": "linear_compiled", "rows_per_call_a": "8",
                    "rows_per_call_b": "1", "threads_a": "1", "threads_b": "2"}
    assert config_from_strings(text) == config
    lenient, warnings = config_from_strings_lenient({"rows_per_call_b": "-4",
                                                     "threads_a": "1"})
    assert lenient.rows_per_call_b == 0 and lenient.threads_a == 1
    assert any("rows_per_call_b" in w and "Using rows_per_call_b=0 instead" in w
               for w in warnings)


def test_url_round_trip_with_a_variant_preset():
    view = view_of(ExperimentConfig(impl_b="linear", rows_per_call_b=8, threads_b=1),
                   "batch_invariance")
    url = to_url(view)
    assert url == {"preset": "batch_invariance", "rows_per_call_b": "8", "threads_b": "1"}
    again, warnings = parse_url(url)
    assert warnings == [] and again == view
