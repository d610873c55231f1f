"""Load test: N concurrent real browser sessions, each with different settings, one server.

    python benchmarks/load_test.py --sessions 20            # prints a table and JSON
    python benchmarks/load_test.py --sessions 3 --format json

Starts `streamlit run app.py` on 127.0.0.1 at a free port, opens N pages at once in
Debian's headless chromium (one browser, one context per session, like N people), each on
its own URL (activation, init constant, depth, dtype, emulation vary), and waits until each
page has finished running. Reports p50/p95/max time to first chart and to a finished page,
how many rendered without an error box, and the server's resident memory before and after.
Bounded: at most 50 sessions, and every wait has a timeout; the server is always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from explorer.devserver import CHROMIUM_ARGS, streamlit_server  # noqa: E402

MAX_SESSIONS = 50

# Each session gets a different view; the query keys are ExperimentConfig field names.
VARIANTS = [
    "",
    "?activation=sigmoid&init_constant=0.001",
    "?emulate_b=tf32",
    "?activation=tanh&depth=5",
    "?dtype=float16",
    "?activation=gelu&init_scheme=torch_default",
    "?impl_b=conv1d&activation=relu",
    "?dtype=float64&depth=2",
    "?activation=silu&init_constant=0.1",
    "?impl_a=matmul&impl_b=tensordot",
    "?emulate_a=bf16&activation=softplus",
    "?depth=1&batch=4",
    "?activation=leaky_relu&init_constant=0.5",
    "?dtype=bfloat16&activation=tanh",
    "?init_scheme=normal&init_constant=0.05",
    "?activation=identity&input_distribution=integers&depth=2",
    "?samples=1&activation=elu&init_constant=2",
    "?emulate_b=fp16&activation=sigmoid",
    "?depth=4&activation=relu&init_constant=0.01",
    "?impl_a=conv1d&impl_b=conv2d&seed=7",
]


@dataclass
class SessionResult:
    url: str
    first_chart_s: float | None
    finished_s: float | None
    charts: int
    error: str | None


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (Linux /proc)."""
    total_kb = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # After the ")" closing the command name, utime and stime are the 12th and 13th fields.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _one_session(browser, url: str, timeout_s: float) -> SessionResult:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    started = time.perf_counter()
    first_chart = finished = None
    error = None
    charts = 0
    try:
        await page.goto(url, timeout=timeout_s * 1000)
        await page.wait_for_selector(".js-plotly-plot", timeout=timeout_s * 1000)
        first_chart = time.perf_counter() - started
        await page.wait_for_selector("[data-test-script-state='notRunning']",
                                     timeout=timeout_s * 1000)
        finished = time.perf_counter() - started
        charts = await page.locator(".js-plotly-plot").count()
        exceptions = page.locator("[data-testid='stException']")
        if await exceptions.count():
            error = (await exceptions.first.inner_text())[:300]
    except Exception as err:  # a timeout or a crash is this session's result, not ours
        error = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    finally:
        await context.close()
    return SessionResult(url, first_chart, finished, charts, error)


async def _all_sessions(base: str, n: int, timeout_s: float) -> list[SessionResult]:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            urls = [base + "/" + VARIANTS[i % len(VARIANTS)] for i in range(n)]
            return await asyncio.gather(*(_one_session(browser, u, timeout_s) for u in urls))
        finally:
            await browser.close()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run_load_test(sessions: int, app: Path = ROOT / "app.py", timeout_s: float = 120.0,
                  log_dir: Path | None = None) -> dict:
    if not 1 <= sessions <= MAX_SESSIONS:
        raise ValueError(f"sessions={sessions}: use 1 to {MAX_SESSIONS}")
    log_dir = log_dir or Path("/tmp")
    with streamlit_server(app, log_dir / "load_test_server.log") as server:
        pid = server.process.pid
        memory_before = rss_mb(pid)
        cpu_before = cpu_seconds(pid)
        wall = time.perf_counter()
        results = asyncio.run(_all_sessions(server.base, sessions, timeout_s))
        wall = time.perf_counter() - wall
        memory_after = rss_mb(pid)
        server_cpu = cpu_seconds(pid) - cpu_before
    firsts = [r.first_chart_s for r in results if r.first_chart_s is not None]
    done = [r.finished_s for r in results if r.finished_s is not None]
    ok = [r for r in results if r.error is None and r.charts > 0]
    return {
        "sessions": sessions,
        "rendered_ok": len(ok),
        "wall_s": round(wall, 2),
        "first_chart_p50_s": _percentile(firsts, 0.5),
        "first_chart_p95_s": _percentile(firsts, 0.95),
        "finished_p50_s": _percentile(done, 0.5),
        "finished_p95_s": _percentile(done, 0.95),
        "finished_max_s": max(done) if done else None,
        # The browsers share this machine's cores with the server: the server's own CPU
        # time says how much of the wall time is the app's work.
        "server_cpu_s": round(server_cpu, 2),
        "server_rss_before_mb": round(memory_before, 1),
        "server_rss_after_mb": round(memory_after, 1),
        "results": [asdict(r) for r in results],
    }


def format_table(summary: dict) -> str:
    def f(x):
        return "-" if x is None else f"{x:.2f}"

    lines = [
        f"sessions: {summary['sessions']}   rendered without error: {summary['rendered_ok']}"
        f"   wall: {summary['wall_s']:.1f} s",
        f"time to first chart  p50 {f(summary['first_chart_p50_s'])} s   "
        f"p95 {f(summary['first_chart_p95_s'])} s",
        f"time to finished page p50 {f(summary['finished_p50_s'])} s   "
        f"p95 {f(summary['finished_p95_s'])} s   max {f(summary['finished_max_s'])} s",
        f"server memory: {summary['server_rss_before_mb']:.0f} MB before, "
        f"{summary['server_rss_after_mb']:.0f} MB after; server CPU time "
        f"{summary['server_cpu_s']:.1f} s over the whole test",
    ]
    for r in summary["results"]:
        if r["error"]:
            lines.append(f"  FAILED {r['url']}: {r['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per session")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    try:
        summary = run_load_test(args.sessions, timeout_s=args.timeout)
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(format_table(summary))
        print(json.dumps({k: v for k, v in summary.items() if k != "results"}))
    return 0 if summary["rendered_ok"] == summary["sessions"] else 1


if __name__ == "__main__":
    sys.exit(main())
