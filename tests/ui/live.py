"""A real `chad-memory serve` on a free port and the system Chromium, for the browser
tests and `make screenshots`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Browser, sync_playwright

from bench.common import free_port

CLI = Path(sys.executable).parent / "chad-memory"
SESSION_SECRET = "browser-test-session-secret-0123456789"
NO_CHROMIUM = (
    "no Chromium found for the dashboard's browser tests: install the system one with "
    "`apt-get install chromium` (or point CHROMIUM at a Chromium binary)"
)


def chromium_path() -> str:
    """The system Chromium; Playwright's own browser download is not used."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(NO_CHROMIUM)


@contextmanager
def serve(database_url: str) -> Iterator[str]:
    """`chad-memory serve` on the given database; yields its base URL once /health answers."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "UI_SESSION_SECRET": SESSION_SECRET,
        "LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "serve exited early"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not start listening"
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@contextmanager
def chromium() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
