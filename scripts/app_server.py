"""Start the dashboard (``streamlit run app.py``) on a free local port, and headless Chromium to look at it.

One launcher for everything that drives the app in a real browser: the app timing
(``scripts/app_timing.py``) and the browser test (``tests/test_browser.py``).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
APP_SCRIPT = "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def streamlit_command(port: int, secrets_file: Path) -> list[str]:
    """The app on localhost only, no file watching, no telemetry, and the given secrets file alone,
    so a local sign-in configuration can't change what is measured or tested."""
    return [sys.executable, "-m", "streamlit", "run", APP_SCRIPT, "--server.address", "127.0.0.1",
            "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--global.developmentMode", "false", "--secrets.files", str(secrets_file)]


def start_app(secrets_file: Path, env: Mapping[str, str], log: IO[bytes] | IO[str],
              project_root: Path = PROJECT_ROOT) -> tuple[subprocess.Popen, str]:
    """(the Streamlit process, in a process group of its own; its URL).  Not yet serving: see
    :func:`wait_for_server`."""
    port = free_port()
    process = subprocess.Popen(streamlit_command(port, secrets_file), cwd=project_root, env=dict(env),
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return process, f"http://127.0.0.1:{port}"


def _log_tail(log_path: Path | None) -> str:
    return "" if log_path is None else ":\n" + log_path.read_text(errors="replace")[-3000:]


def wait_for_server(url: str, process: subprocess.Popen, timeout_s: float, log_path: Path | None = None) -> None:
    """Until Streamlit answers its health check; RuntimeError (with the log's end) if it exits or is late."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode} before serving"
                               + _log_tail(log_path))
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise RuntimeError(f"streamlit did not answer on {url} within {timeout_s:.0f} s" + _log_tail(log_path))


def stop_app(process: subprocess.Popen) -> None:
    """Stop the server we started: its whole process group, by id; killed if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass


def chromium_available(chromium: Path = CHROMIUM) -> bool:
    return chromium.is_file() and os.access(chromium, os.X_OK)


def launch_chromium(playwright: Any, chromium: Path = CHROMIUM) -> Any:
    """Headless Chromium through Playwright (raises Playwright's Error when it doesn't start)."""
    return playwright.chromium.launch(executable_path=str(chromium), args=list(CHROMIUM_FLAGS), headless=True)
