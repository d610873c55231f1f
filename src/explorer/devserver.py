"""Start `streamlit run app.py` on 127.0.0.1 for tests, the benchmark and the load test.

One place for the dance every browser-driven check needs: a free loopback port, wait for
/_stcore/health, and always stop the whole process group, also when the caller raised.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update",
                 "--disable-sync"]


@dataclass
class Server:
    base: str  # http://127.0.0.1:PORT
    process: subprocess.Popen
    healthy_seconds: float  # from start to the first "ok" on /_stcore/health


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@contextlib.contextmanager
def streamlit_server(app: Path, log_path: Path | None = None, timeout: float = 60.0
                     ) -> Iterator[Server]:
    """Run the app headless on a free loopback port; RuntimeError if it never gets healthy."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port),
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=Path(app).parent, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                tail = Path(log_path).read_text()[-2000:] if log_path else ""
                raise RuntimeError(f"streamlit exited with code {proc.returncode} before it "
                                   f"was ready. {tail}")
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"streamlit did not answer {base}/_stcore/health within "
                                   f"{timeout:.0f} s")
            time.sleep(0.1)
        yield Server(base, proc, time.perf_counter() - started)
    finally:
        _stop(proc)
        if log_path:
            log.close()
