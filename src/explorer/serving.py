"""Serving many sessions from one process: admission of heavy runs, and one shared cache.

A hosted app is one process; every browser tab is a thread in it. Without a limit, eight
visitors asking for mid-size runs at once hold eight runs' memory at once (2.8 GB measured
before this module). Here:

- ``Admission`` lets a bounded number of heavy runs compute at once (a count and a total of
  estimated bytes); the others wait in arrival order and are told how many runs are ahead
  of them, and past a bound on the queue a new run is refused at once with ``Busy``.
- ``ReportCache`` keeps the last reports by what decides their numbers (config and thread
  count), and computes each config once when several sessions ask for it together.
- Light runs (the forum case and its like: a few MB, a fraction of a second) skip the queue:
  waiting in line would cost them more than running.

Settings (limits.SETTINGS): EXPLORER_MAX_CONCURRENT_RUNS, EXPLORER_MAX_RUNNING_BYTES,
EXPLORER_MAX_QUEUED_RUNS. No Streamlit here: the UI passes callbacks (``on_wait`` to show
the queue position, ``should_stop`` to abandon a run whose browser has gone).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from explorer import allocator
from explorer.compare import Cancelled
from explorer.limits import Estimate, estimate, setting
from explorer.precision import threads_in_effect

if TYPE_CHECKING:
    from explorer.config import ExperimentConfig
    from explorer.report import Report

# A run is light when it is estimated under both: it runs at once, beside anything.
LIGHT_BYTES = 48 * 2**20
LIGHT_SECONDS = 0.5
# How often a waiting run looks at should_stop and at its place in the queue.
POLL_SECONDS = 0.2

StopCheck = Callable[[], bool]
WaitReport = Callable[[int], None]  # called with the number of runs ahead


class Busy(Exception):
    """The queue of waiting runs is full: the caller should try later or a smaller run."""


def is_light(cost: Estimate) -> bool:
    return cost.bytes <= LIGHT_BYTES and cost.seconds <= LIGHT_SECONDS


@dataclass(eq=False)  # identity: two runs of the same size are still two places in line
class _Ticket:
    cost_bytes: float


class Admission:
    """At most ``max_running`` admitted runs at once, and at most ``max_running_bytes`` of
    estimated memory among them (a run larger than that alone still runs, alone); others
    wait first come, first served; at most ``max_queued`` wait."""

    def __init__(self, max_running: int, max_running_bytes: float, max_queued: int):
        if max_running < 1 or max_queued < 0 or not max_running_bytes > 0:
            raise ValueError(f"max_running={max_running} must be >= 1, max_queued="
                             f"{max_queued} >= 0 and max_running_bytes > 0")
        self.max_running = max_running
        self.max_running_bytes = max_running_bytes
        self.max_queued = max_queued
        self._cond = threading.Condition()
        self._queue: list[_Ticket] = []  # waiting, in arrival order
        self._running: list[_Ticket] = []

    def _fits(self, ticket: _Ticket) -> bool:
        if not self._running:
            return True
        used = sum(t.cost_bytes for t in self._running)
        return (len(self._running) < self.max_running
                and used + ticket.cost_bytes <= self.max_running_bytes)

    def snapshot(self) -> tuple[int, int]:
        """(running, waiting) right now."""
        with self._cond:
            return len(self._running), len(self._queue)

    @contextlib.contextmanager
    def admit(self, cost_bytes: float, *, on_wait: WaitReport | None = None,
              should_stop: StopCheck | None = None) -> Iterator[None]:
        """Hold a place among the running runs for the block.

        Raises Busy when ``max_queued`` runs already wait, and compare.Cancelled when
        ``should_stop`` says so while waiting. ``on_wait(ahead)`` is called whenever the
        number of runs ahead changes (never when the run is admitted at once).
        """
        ticket = _Ticket(cost_bytes)
        with self._cond:
            if not self._queue and self._fits(ticket):
                self._running.append(ticket)
            else:
                if len(self._queue) >= self.max_queued:
                    raise Busy(
                        f"the server is busy: {len(self._running)} runs are computing and "
                        f"{len(self._queue)} are waiting (at most {self.max_queued}). Try a "
                        "smaller run (fewer rows or narrower layers), or again in a moment.")
                self._queue.append(ticket)
                last_reported = None
                try:
                    while not (self._queue[0] is ticket and self._fits(ticket)):
                        ahead = self._queue.index(ticket) + len(self._running)
                        if on_wait is not None and ahead != last_reported:
                            last_reported = ahead
                            self._cond.release()  # the callback may render; don't hold
                            try:
                                on_wait(ahead)
                            finally:
                                self._cond.acquire()
                            continue
                        if should_stop is not None and should_stop():
                            raise Cancelled("run abandoned while waiting for its turn: the "
                                            "caller asked to stop (its session is gone)")
                        self._cond.wait(POLL_SECONDS)
                except BaseException:
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                    raise
                self._queue.remove(ticket)
                self._running.append(ticket)
                self._cond.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._cond:
                self._running.remove(ticket)
                self._cond.notify_all()


class ReportCache:
    """LRU of reports keyed by (config, threads in effect); one computation per key.

    A second caller asking for a key being computed waits for that result instead of
    computing it again; if the first computation was cancelled (its session left), one of
    the waiters computes it.
    """

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._items: OrderedDict[tuple, Report] = OrderedDict()
        self._computing: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(config: "ExperimentConfig") -> tuple["ExperimentConfig", int]:
        # threads=0 runs with the process default; the CPU ISA and torch build are fixed for
        # the process's life, and so is this cache.
        return config, threads_in_effect(config.threads)

    def get(self, config: "ExperimentConfig") -> Report | None:
        key = self.key(config)
        with self._lock:
            report = self._items.get(key)
            if report is not None:
                self._items.move_to_end(key)
            return report

    def get_or_compute(self, config: "ExperimentConfig", compute: Callable[[], Report], *,
                       should_stop: StopCheck | None = None) -> Report:
        key = self.key(config)
        while True:
            with self._lock:
                report = self._items.get(key)
                if report is not None:
                    self._items.move_to_end(key)
                    return report
                running = self._computing.get(key)
                if running is None:
                    done = self._computing[key] = threading.Event()
                    break
            while not running.wait(POLL_SECONDS):
                if should_stop is not None and should_stop():
                    raise Cancelled("stopped waiting for another session's identical run: "
                                    "the caller asked to stop")
        try:
            report = compute()
            with self._lock:
                self._items[key] = report
                self._items.move_to_end(key)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
            return report
        finally:
            with self._lock:
                del self._computing[key]
            done.set()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class Server:
    """What one app process shares between its sessions: admission and the report cache."""

    def __init__(self, admission: Admission, cache: ReportCache):
        self.admission = admission
        self.cache = cache

    def run(self, config: "ExperimentConfig", *, on_wait: WaitReport | None = None,
            should_stop: StopCheck | None = None) -> Report:
        """compare.run through admission (heavy runs only); no cache (sweeps keep their own)."""
        from explorer.compare import run

        cost = estimate(config)
        if is_light(cost):
            return run(config, should_stop=should_stop)
        try:
            with self.admission.admit(cost.bytes, on_wait=on_wait, should_stop=should_stop):
                return run(config, should_stop=should_stop)
        finally:
            allocator.release()  # give a heavy run's freed memory back to the system

    def report(self, config: "ExperimentConfig", *, on_wait: WaitReport | None = None,
               should_stop: StopCheck | None = None) -> Report:
        """The cached report, or one computed through admission (and then cached)."""
        return self.cache.get_or_compute(
            config, lambda: self.run(config, on_wait=on_wait, should_stop=should_stop),
            should_stop=should_stop)


_server: Server | None = None
_server_lock = threading.Lock()


def server() -> Server:
    """The process's Server, built from the environment's settings on first use."""
    global _server
    with _server_lock:
        if _server is None:
            _server = Server(
                Admission(int(setting("EXPLORER_MAX_CONCURRENT_RUNS")),
                          setting("EXPLORER_MAX_RUNNING_BYTES"),
                          int(setting("EXPLORER_MAX_QUEUED_RUNS"))),
                ReportCache())
        return _server
