"""Property-based: whatever text arrives from a URL or the command line, the validation
layer answers with a config or a clear message, never an exception from deeper down."""

import contextlib
import dataclasses
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.cli import main
from explorer.config import (
    FIELD_TYPES,
    ExperimentConfig,
    config_from_strings,
    config_from_strings_lenient,
)

FIELDS = sorted(FIELD_TYPES)
# Text that looks like what people (or attackers) put in URLs.
NASTY = st.sampled_from(["", "nan", "inf", "-inf", "-1", "0", "1e308", "1e-320", "9" * 40,
                         "<script>alert(1)</script>", "__import__('os')", "64,,128",
                         "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", "true", "cuda:99",
                         "\x00", "😀", "1" * 300, " 3 ", "0x10", "1_000"])
TEXT = st.one_of(NASTY, st.text(max_size=30))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS + ["preset", "unknown"]), TEXT, max_size=6))
def test_lenient_url_parsing_never_raises_and_always_yields_a_valid_config(values):
    config, warnings = config_from_strings_lenient(values)
    assert isinstance(config, ExperimentConfig)
    # Re-validating the result must pass: the fallback is itself a valid config.
    ExperimentConfig(**dataclasses.asdict(config))
    assert all(isinstance(w, str) and w for w in warnings)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), TEXT, max_size=4))
def test_strict_parsing_raises_only_value_error(values):
    try:
        config_from_strings(values)
    except ValueError as err:
        assert str(err)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(FIELDS), NASTY), max_size=3))
def test_cli_answers_zero_or_two_never_a_traceback(pairs):
    argv = ["compare", "--format", "json", "--batch", "2", "--samples", "1"]
    for name, value in pairs:
        argv += ["--" + name.replace("_", "-"), value]
    out, err_stream = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err_stream):
        code = main(argv)
    err = err_stream.getvalue()
    assert code in (0, 2)
    if code == 2:
        assert err.startswith("error: ") and "Traceback" not in err
