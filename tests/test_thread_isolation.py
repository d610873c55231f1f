"""One session's thread setting must never change another's numbers (issue 10).

PyTorch keeps the intra-op thread count per OS thread, plus a process-wide value that each
new OS thread adopts on its first parallel call; Streamlit runs every rerun on a new thread.
These tests reproduce the overlap an audit found on a hosted server.
"""

import json
import subprocess
import sys
import threading

import pytest
import torch

from explorer import ExperimentConfig, run
from explorer.compare import Cancelled
from explorer.precision import (
    DEFAULT_THREADS,
    STATE_LOCK,
    threads_for_new_threads,
    threads_in_effect,
    torch_state,
)

# A count that differs from the process default, whatever the machine has.
OTHER = 1 if DEFAULT_THREADS != 1 else 2
DEFAULT_CONFIG = ExperimentConfig(depth=6, batch=64, seed=6)


def _in_thread(work):
    out: dict = {}

    def target():
        try:
            out["value"] = work()
        except BaseException as err:  # surfaced by the caller
            out["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


def _independent_summary(config: ExperimentConfig) -> dict:
    """The same config in a fresh process (nothing ran before it there)."""
    code = ("import json, sys; from explorer import ExperimentConfig, run; "
            "from explorer.report import jsonable; "
            f"r = run(ExperimentConfig(**{config.to_dict()!r} | {{'widths': ()}})); "
            "print(json.dumps({'threads': r.environment['threads'], "
            "'taps': jsonable([t.__dict__ for t in r.taps])}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    return json.loads(out.stdout)


def test_threads_in_effect_is_the_setting_or_the_process_default():
    assert threads_in_effect(3) == 3
    assert threads_in_effect(0) == DEFAULT_THREADS >= 1


def test_default_run_after_an_overlapping_single_thread_run_uses_the_process_default():
    long_run_inside = threading.Event()
    release = threading.Event()
    seen_inside_long_run: list[int] = []

    def hold_long_run() -> bool:
        # Called between layers of the threads=OTHER run: report what is in effect, and
        # keep the run going until the second session has started beside it.
        seen_inside_long_run.append(torch.get_num_threads())
        long_run_inside.set()
        release.wait(timeout=60)
        return False

    long_config = ExperimentConfig(threads=OTHER, batch=200, samples=1, depth=4,
                                   widths=(128, 128, 128, 128))
    first, first_out = _in_thread(lambda: run(long_config, should_stop=hold_long_run))
    assert long_run_inside.wait(timeout=60)

    second_started = threading.Event()

    def second_session():
        # A new script thread touches torch while the other run has OTHER threads set (the
        # old code drew its input here): its first read adopts the process-wide value.
        first_read = torch.get_num_threads()
        second_started.set()
        return first_read, run(DEFAULT_CONFIG)

    second, second_out = _in_thread(second_session)
    assert second_started.wait(timeout=60)
    release.set()
    first.join(timeout=300)
    second.join(timeout=300)
    assert "error" not in first_out and "error" not in second_out, (first_out, second_out)
    assert set(seen_inside_long_run) == {OTHER}
    assert first_out["value"].environment["threads"] == OTHER
    stale_read, second_report = second_out["value"]
    assert stale_read == OTHER  # the overlap really happened
    assert second_report.environment["threads"] == DEFAULT_THREADS

    # A third session, on a new thread after both: the process default, and the numbers of
    # the same config run alone in a fresh process.
    third, third_out = _in_thread(lambda: (torch.get_num_threads(), run(DEFAULT_CONFIG)))
    third.join(timeout=300)
    first_read, third_report = third_out["value"]
    assert first_read == DEFAULT_THREADS
    assert third_report.environment["threads"] == DEFAULT_THREADS
    assert threads_for_new_threads() == DEFAULT_THREADS
    assert third_report.taps == second_report.taps

    from explorer.report import jsonable

    independent = _independent_summary(DEFAULT_CONFIG)
    assert independent["threads"] == DEFAULT_THREADS
    assert jsonable([t.__dict__ for t in third_report.taps]) == independent["taps"]
    assert STATE_LOCK.is_free()


def test_a_run_restores_its_own_thread_count_and_the_one_new_threads_adopt():
    def scenario():
        torch.set_num_threads(OTHER)  # this thread (and new ones) now use OTHER
        try:
            with torch_state(threads=0) as flags:
                inside = torch.get_num_threads()
            return flags["threads"], inside, torch.get_num_threads(), threads_for_new_threads()
        finally:
            torch.set_num_threads(DEFAULT_THREADS)

    thread, out = _in_thread(scenario)
    thread.join(timeout=60)
    assert out["value"] == (DEFAULT_THREADS, DEFAULT_THREADS, OTHER, OTHER)
    assert threads_for_new_threads() == DEFAULT_THREADS

    # A run that sets OTHER on a thread at the default leaves both exactly as they were.
    with torch_state(threads=OTHER) as flags:
        assert flags["threads"] == OTHER == torch.get_num_threads()
    assert torch.get_num_threads() == DEFAULT_THREADS
    assert threads_for_new_threads() == DEFAULT_THREADS


def test_should_stop_abandons_the_run_at_the_next_layer_and_frees_the_lock():
    asked: list[int] = []

    def stop_at_third_layer() -> bool:
        asked.append(len(asked) + 1)
        return len(asked) == 3

    with pytest.raises(Cancelled, match="abandoned before layer 3 of 4"):
        run(ExperimentConfig(threads=OTHER), should_stop=stop_at_third_layer)
    assert asked == [1, 2, 3]
    assert STATE_LOCK.is_free()
    assert torch.get_num_threads() == DEFAULT_THREADS
    assert threads_for_new_threads() == DEFAULT_THREADS


def test_should_stop_that_never_fires_changes_nothing(seed_report):
    asked: list[int] = []
    report = run(ExperimentConfig(), should_stop=lambda: asked.append(1) or False)
    assert len(asked) == 4  # once per affine layer of 256-64-128-256-4
    assert report.taps == seed_report.taps
