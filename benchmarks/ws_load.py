"""Load benchmark at the websocket level: many sessions, one server, no browsers.

    python benchmarks/ws_load.py                       # bursts of 8/16/32 and 2 sessions/s
    python benchmarks/ws_load.py --burst 16 --views forum --format json
    python benchmarks/ws_load.py --rate 2 --duration 20
    python benchmarks/ws_load.py --burst 16 --views varied --server-env OMP_WAIT_POLICY=ACTIVE

Each simulated visitor does what Streamlit's browser client does on opening a link, and no
more: it opens the websocket at /_stcore/stream (subprotocol "streamlit"), sends one BackMsg
``rerun_script`` carrying the link's query string, and reads ForwardMsgs until the script
finishes. The time to the first chart is the time from opening the socket to the first
``delta.new_element.plotly_chart``. A session fails when it sees an exception element, the
"could not be made" error box, the "server is busy" warning, or no chart by the deadline
(a verdict shown in red, such as float16's overflow, is content, not a failure). Rendering
in a browser is not measured: this is the server alone, what a hosted server must supply.

Every scenario starts a fresh ``streamlit run app.py`` on 127.0.0.1 (explorer.devserver)
and reports p50/p95/max time to first chart, errors, and the server's peak resident memory
(VmHWM) and CPU time. Bounded: at most 64 sessions per burst, a rate of at most 10/s for at
most 120 s, a deadline per session, and the server is always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from explorer.devserver import streamlit_server  # noqa: E402

MAX_BURST = 64
MAX_RATE = 10.0
MAX_DURATION = 120.0
MAX_DEADLINE = 600.0

# "forum": everyone opens the bare link (the forum case), as a shared demo link does.
# "varied": each visitor opens a different view (activation, init, depth, dtype, sides).
VARIED = [
    {},
    {"activation": "sigmoid", "init_constant": "0.001"},
    {"emulate_b": "tf32"},
    {"activation": "tanh", "depth": "5"},
    {"dtype": "float16"},
    {"activation": "gelu", "init_scheme": "torch_default"},
    {"impl_b": "conv1d", "activation": "relu"},
    {"dtype": "float64", "depth": "2"},
    {"activation": "silu", "init_constant": "0.1"},
    {"impl_a": "matmul", "impl_b": "tensordot"},
    {"emulate_a": "bf16", "activation": "softplus"},
    {"depth": "1", "batch": "4"},
    {"activation": "leaky_relu", "init_constant": "0.5"},
    {"dtype": "bfloat16", "activation": "tanh"},
    {"init_scheme": "normal", "init_constant": "0.05"},
    {"activation": "identity", "input_distribution": "integers", "depth": "2"},
]


def heavy_rows() -> int:
    """The most rows the default budget allows for the forum's layer sizes (~256 MB)."""
    from explorer.config import ExperimentConfig
    from explorer.limits import SETTINGS, Budget, max_rows

    budget = Budget(SETTINGS["EXPLORER_MAX_BYTES"].default,
                    SETTINGS["EXPLORER_MAX_FLOPS"].default)
    return max_rows(ExperimentConfig().layer_sizes, "float32", budget)


def views(kind: str, count: int) -> list[str]:
    """Query strings for ``count`` visitors: all the forum case, all different, or all
    different and each as large as the default per-run budget allows ("heavy")."""
    if kind == "forum":
        return [""] * count
    if kind == "heavy":
        return [urlencode({"batch": heavy_rows(), "samples": 1, "seed": 100 + i})
                for i in range(count)]
    out = []
    for i in range(count):
        params = dict(VARIED[i % len(VARIED)])
        if i >= len(VARIED):  # past the list: a different seed makes a different run
            params["seed"] = str(1000 + i)
        out.append(urlencode(params))
    return out


@dataclass
class SessionResult:
    query: str
    first_chart_s: float | None = None
    finished_s: float | None = None
    charts: int = 0
    error: str | None = None
    alerts: list[str] = field(default_factory=list)  # every alert box's text, in order


def _alert_text(element) -> str:
    return element.alert.body[:200]


async def visit(ws_url: str, query: str, deadline_s: float, page_name: str = ""
                ) -> SessionResult:
    """One visitor: open the socket, ask for the page (by its URL name, "" for the
    Explorer) with this query, read until done."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    result = SessionResult(query)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline_s):
            async with websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None,
                                          open_timeout=deadline_s) as ws:
                back = BackMsg()
                back.rerun_script.query_string = query
                back.rerun_script.page_script_hash = ""
                back.rerun_script.page_name = page_name
                await ws.send(back.SerializeToString())
                async for data in ws:
                    msg = ForwardMsg.FromString(data)
                    kind = msg.WhichOneof("type")
                    if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                        element = msg.delta.new_element
                        etype = element.WhichOneof("type")
                        if etype == "plotly_chart":
                            result.charts += 1
                            if result.first_chart_s is None:
                                result.first_chart_s = time.perf_counter() - started
                        if etype == "alert":
                            result.alerts.append(element.alert.body)
                        if etype == "exception":
                            result.error = f"exception: {element.exception.message[:200]}"
                        elif etype == "alert" and "could not be made" in element.alert.body:
                            result.error = f"error box: {_alert_text(element)}"
                        elif etype == "alert" and "server is busy" in element.alert.body:
                            result.error = f"busy: {_alert_text(element)}"
                    elif kind == "script_finished":
                        result.finished_s = time.perf_counter() - started
                        break
    except TimeoutError:
        result.error = result.error or f"no finished page within {deadline_s:.0f} s"
    except Exception as err:  # connection refused, closed early: reported, not raised
        result.error = result.error or f"{type(err).__name__}: {err}"[:200]
    if result.error is None and not result.charts:
        result.error = "the page finished without a chart"
    return result


def _proc_figures(pid: int) -> dict[str, float]:
    """The server's peak resident memory (MB) and CPU seconds so far (Linux /proc)."""
    out = {"peak_rss_mb": float("nan"), "rss_mb": float("nan"), "cpu_s": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["peak_rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("VmRSS:"):
                out["rss_mb"] = int(line.split()[1]) / 1024
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        pass
    return out


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class ScenarioResult:
    name: str
    sessions: int
    ok: int
    errors: list[str] = field(default_factory=list)
    first_chart_p50_s: float | None = None
    first_chart_p95_s: float | None = None
    first_chart_max_s: float | None = None
    server_peak_rss_mb: float = float("nan")
    server_rss_idle_mb: float = float("nan")  # after start-up and one warm visit
    server_cpu_s: float = float("nan")  # during the scenario
    load_average: float = float("nan")  # 1-minute, at the end
    results: list[SessionResult] = field(default_factory=list)


async def _burst(ws_url: str, queries: list[str], deadline_s: float) -> list[SessionResult]:
    return list(await asyncio.gather(*(visit(ws_url, q, deadline_s) for q in queries)))


async def _steady(ws_url: str, queries: list[str], rate: float, deadline_s: float
                  ) -> list[SessionResult]:
    tasks = []
    for i, query in enumerate(queries):
        await asyncio.sleep(max(0.0, i / rate - (time.perf_counter() - _steady.t0)))
        tasks.append(asyncio.create_task(visit(ws_url, query, deadline_s)))
    return list(await asyncio.gather(*tasks))


def run_scenario(name: str, queries: list[str], *, rate: float | None = None,
                 deadline_s: float = 60.0, log_dir: Path | None = None,
                 env: dict[str, str] | None = None) -> ScenarioResult:
    """A fresh server, one warm-up visit (imports and the forum case), then the visitors."""
    if not 1 <= len(queries) <= MAX_BURST * 4:
        raise ValueError(f"sessions={len(queries)}: use 1 to {MAX_BURST * 4}")
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in name)
    log = (log_dir / f"server-{slug}.log") if log_dir else None
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with streamlit_server(ROOT / "app.py", log_path=log) as server:
            ws_url = server.base.replace("http://", "ws://") + "/_stcore/stream"
            warm = asyncio.run(visit(ws_url, "", deadline_s))
            if warm.error:
                raise RuntimeError(f"the warm-up visit failed: {warm.error}")
            idle = _proc_figures(server.process.pid)
            if rate is None:
                results = asyncio.run(_burst(ws_url, queries, deadline_s))
            else:
                _steady.t0 = time.perf_counter()
                results = asyncio.run(_steady(ws_url, queries, rate, deadline_s))
            after = _proc_figures(server.process.pid)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    firsts = [r.first_chart_s for r in results if r.first_chart_s is not None]
    errors = [f"{r.query or '(forum)'}: {r.error}" for r in results if r.error]
    return ScenarioResult(
        name=name, sessions=len(results), ok=len(results) - len(errors), errors=errors,
        first_chart_p50_s=_quantile(firsts, 0.5), first_chart_p95_s=_quantile(firsts, 0.95),
        first_chart_max_s=max(firsts) if firsts else None,
        server_peak_rss_mb=after["peak_rss_mb"], server_rss_idle_mb=idle["rss_mb"],
        server_cpu_s=after["cpu_s"] - idle["cpu_s"], load_average=os.getloadavg()[0],
        results=results)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def table(rows: list[ScenarioResult]) -> str:
    head = ("scenario", "sessions", "ok", "first chart p50 / p95 / max (s)",
            "server peak RSS", "server CPU", "load avg")
    lines = [head]
    for r in rows:
        lines.append((r.name, str(r.sessions), str(r.ok),
                      f"{_fmt(r.first_chart_p50_s)} / {_fmt(r.first_chart_p95_s)} / "
                      f"{_fmt(r.first_chart_max_s)}",
                      f"{r.server_peak_rss_mb:.0f} MB (idle {r.server_rss_idle_mb:.0f})",
                      f"{r.server_cpu_s:.1f} s", f"{r.load_average:.1f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    for r in rows:
        out += [f"  {r.name}: {e}" for e in r.errors[:5]]
    return "\n".join(out)


def _exit_on_sigterm() -> None:
    """A kill (timeout, CI) unwinds like Ctrl-C, so the server is stopped with us."""
    import signal

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--burst", type=int, action="append",
                        help="a burst of N simultaneous arrivals (repeatable; default 8 16 32)")
    parser.add_argument("--rate", type=float, default=None,
                        help="steady arrivals per second (default 2, with --duration 15)")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--views", choices=("forum", "varied", "heavy", "both"),
                        default="both", help="both = forum and varied")
    parser.add_argument("--deadline", type=float, default=60.0, help="per session, seconds")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--log-dir", type=Path, default=None)
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the server (repeatable), e.g. "
                             "EXPLORER_MAX_CONCURRENT_RUNS=1 or OMP_WAIT_POLICY=ACTIVE")
    args = parser.parse_args(argv)
    _exit_on_sigterm()
    server_env = {}
    for item in args.server_env:
        name, sep, value = item.partition("=")
        if not sep or not name or not name.replace("_", "").isalnum() or name[0].isdigit():
            parser.error(f"--server-env {item!r}: write NAME=VALUE, where NAME has only "
                         "letters, digits and _ and does not start with a digit, e.g. "
                         "EXPLORER_MAX_CONCURRENT_RUNS=1")
        server_env[name] = value
    if not 0 < args.deadline <= MAX_DEADLINE:
        parser.error(f"--deadline {args.deadline:g}: use above 0 and at most "
                     f"{MAX_DEADLINE:g} seconds per session")
    bursts = args.burst or ([] if args.rate is not None else [8, 16, 32])
    rate = args.rate if args.rate is not None else (2.0 if not args.burst else None)
    for n in bursts:
        if not 1 <= n <= MAX_BURST:
            parser.error(f"--burst {n}: use 1 to {MAX_BURST}")
    if rate is not None and not 0 < rate <= MAX_RATE:
        parser.error(f"--rate {rate:g}: use a rate above 0 and at most {MAX_RATE:g} arrivals "
                     "per second (leave --rate out to run only the bursts)")
    if rate is None and args.duration != parser.get_default("duration"):
        parser.error("--duration applies to --rate: add --rate, or leave --duration out")
    if rate is not None and not 0 < args.duration <= MAX_DURATION:
        parser.error(f"--duration {args.duration:g}: use above 0 and at most "
                     f"{MAX_DURATION:g} seconds")
    kinds = ("forum", "varied") if args.views == "both" else (args.views,)
    plan = [(f"burst {n}, {kind}", views(kind, n), None) for kind in kinds for n in bursts]
    if rate is not None:
        count = max(1, round(rate * args.duration))
        plan += [(f"{rate:g}/s for {args.duration:g} s, {kind}", views(kind, count), rate)
                 for kind in kinds]
    rows = []
    for i, (name, queries, scenario_rate) in enumerate(plan, 1):
        rows.append(run_scenario(name, queries, rate=scenario_rate, deadline_s=args.deadline,
                                 log_dir=args.log_dir, env=server_env))
        # Progress on stderr, one line per finished scenario; the table comes once, at the end.
        last = rows[-1]
        print(f"[{i}/{len(plan)}] {name}: {last.ok}/{last.sessions} ok, first chart p95 "
              f"{_fmt(last.first_chart_p95_s)} s, peak RSS {last.server_peak_rss_mb:.0f} MB",
              file=sys.stderr, flush=True)
    if args.format == "json":
        print(json.dumps([{k: v for k, v in asdict(r).items() if k != "results"} | {
            "results": [asdict(s) for s in r.results]} for r in rows], indent=2))
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
