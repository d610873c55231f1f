"""Admission of heavy runs, the shared report cache, and abandoning runs nobody awaits."""

import threading

import pytest

from explorer import ExperimentConfig, serving
from explorer.compare import Cancelled
from explorer.serving import Admission, Busy, ReportCache, Server

MB = 2**20


def _start(target, *args):
    out: dict = {}

    def body():
        try:
            out["value"] = target(*args)
        except BaseException as err:  # checked by the caller
            out["error"] = err

    thread = threading.Thread(target=body)
    thread.start()
    return thread, out


def test_admission_runs_a_bounded_number_and_reports_the_queue_in_order():
    gate = Admission(max_running=1, max_running_bytes=1000 * MB, max_queued=2)
    release_first = threading.Event()
    order: list[str] = []
    positions: dict[str, list[int]] = {"second": [], "third": []}
    waiting = {"second": threading.Event(), "third": threading.Event()}
    third_moved_up = threading.Event()

    def first():
        with gate.admit(10 * MB):
            order.append("first")
            release_first.wait(30)

    def queued(name):
        def on_wait(ahead):
            positions[name].append(ahead)
            waiting[name].set()
            if name == "third" and ahead == 1:
                third_moved_up.set()

        with gate.admit(10 * MB, on_wait=on_wait):
            order.append(name)
            if name == "second":  # hold the slot until the third has seen itself move up
                third_moved_up.wait(30)

    t1, o1 = _start(first)
    while gate.snapshot() != (1, 0):
        pass
    t2, o2 = _start(queued, "second")
    assert waiting["second"].wait(30)
    t3, o3 = _start(queued, "third")
    assert waiting["third"].wait(30)
    assert gate.snapshot() == (1, 2)
    # A fourth finds the queue full: refused at once, with what to do.
    with pytest.raises(Busy, match="1 runs are computing and 2 are waiting .at most 2.. Try a "
                                   "smaller run"):
        with gate.admit(10 * MB):
            pass
    release_first.set()
    for t in (t1, t2, t3):
        t.join(30)
    assert not any("error" in o for o in (o1, o2, o3))
    assert order == ["first", "second", "third"]  # first come, first served
    assert positions["second"][0] == 1 and positions["third"][0] == 2
    assert positions["third"][-1] == 1  # it moved up when the first finished
    assert gate.snapshot() == (0, 0)


def test_admission_counts_memory_and_lets_an_oversized_run_go_alone():
    gate = Admission(max_running=4, max_running_bytes=100 * MB, max_queued=4)
    with gate.admit(60 * MB):
        with gate.admit(30 * MB):  # 90 MB together: fits
            assert gate.snapshot() == (2, 0)
    with gate.admit(500 * MB):  # larger than the pool, alone: admitted
        assert gate.snapshot() == (1, 0)
    hold, holding = threading.Event(), threading.Event()

    def big():
        with gate.admit(80 * MB):
            holding.set()
            hold.wait(30)

    t, out = _start(big)
    assert holding.wait(30)
    stop = threading.Event()
    t2, out2 = _start(lambda: gate.admit(30 * MB, should_stop=stop.is_set).__enter__())
    while gate.snapshot() != (1, 1):  # 80 + 30 > 100 MB: it waits
        pass
    stop.set()  # its session left while it waited
    t2.join(30)
    assert isinstance(out2.get("error"), Cancelled)
    assert "while waiting for its turn" in str(out2["error"])
    hold.set()
    t.join(30)
    assert gate.snapshot() == (0, 0)


def test_admission_rejects_nonsense_sizes():
    with pytest.raises(ValueError, match="max_running=0 must be >= 1"):
        Admission(0, MB, 1)


def test_report_cache_computes_a_config_once_for_simultaneous_callers():
    cache = ReportCache(capacity=2)
    config = ExperimentConfig(batch=2, samples=1)
    calls: list[int] = []
    proceed = threading.Event()

    def compute():
        calls.append(1)
        proceed.wait(30)
        return "report"

    threads = [_start(cache.get_or_compute, config, compute) for _ in range(4)]
    while not calls:
        pass
    proceed.set()
    for t, _ in threads:
        t.join(30)
    assert [out["value"] for _, out in threads] == ["report"] * 4
    assert calls == [1]
    # Keyed by the thread count in effect too: threads=0 and an explicit count differ.
    assert cache.get(config) == "report"
    assert cache.get(config.replace(threads=1 if config.threads != 1 else 2)) is None


def test_report_cache_recomputes_after_a_cancelled_computation_and_is_bounded():
    cache = ReportCache(capacity=2)
    config = ExperimentConfig(batch=2, samples=1)

    def cancelled():
        raise Cancelled("gone")

    with pytest.raises(Cancelled):
        cache.get_or_compute(config, cancelled)
    assert cache.get_or_compute(config, lambda: "second try") == "second try"
    for seed in (1, 2, 3):
        cache.get_or_compute(config.replace(seed=seed), lambda: "x")
    assert len(cache) == 2 and cache.get(config) is None


def test_server_runs_heavy_configs_through_admission_and_light_ones_directly(seed_report):
    gate = Admission(max_running=1, max_running_bytes=1, max_queued=0)
    server = Server(gate, ReportCache())
    heavy = ExperimentConfig(batch=4096, samples=1, depth=3)
    assert not serving.is_light(__import__("explorer.limits").limits.estimate(heavy))
    with gate.admit(1):  # the one slot is taken and the queue holds 0: heavy is refused
        with pytest.raises(Busy):
            server.report(heavy)
        report = server.report(ExperimentConfig())  # the forum case is light: it runs
    assert report.taps == seed_report.taps
    assert server.report(ExperimentConfig()) is report  # cached


def test_server_run_abandons_a_run_whose_session_has_gone():
    server = Server(Admission(1, 1000 * MB, 4), ReportCache())
    asked: list[int] = []

    def gone_after_first_layer():
        asked.append(1)
        return len(asked) > 1

    with pytest.raises(Cancelled, match="abandoned before layer 2"):
        server.report(ExperimentConfig(batch=4096, samples=1), should_stop=gone_after_first_layer)
    assert len(server.cache) == 0  # nothing partial is cached


def test_process_server_is_built_from_the_settings(monkeypatch):
    monkeypatch.setattr(serving, "_server", None)
    monkeypatch.setenv("EXPLORER_MAX_CONCURRENT_RUNS", "3")
    monkeypatch.setenv("EXPLORER_MAX_QUEUED_RUNS", "abc")  # falls back to the default 16
    built = serving.server()
    assert built.admission.max_running == 3 and built.admission.max_queued == 16
    assert serving.server() is built
