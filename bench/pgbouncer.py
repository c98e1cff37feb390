"""A real PgBouncer in front of a PostgreSQL server, for the pooler tests and `make load`.

Debian's `pgbouncer` (1.18 on bookworm: no prepared-statement tracking, the hardest case
for a client). `make test` installs it when missing; elsewhere the tests fail with the
install line instead of skipping.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.common import free_port

NO_PGBOUNCER = (
    "PgBouncer is missing: apt-get install pgbouncer (make test installs it when run as root)"
)


def pgbouncer_path() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
    )
    if found is None:
        raise RuntimeError(NO_PGBOUNCER)
    return found


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@contextmanager
def pgbouncer(
    server_url: str,
    *,
    pool_mode: str = "transaction",
    pool_size: int = 2,
    log_file: Path | None = None,
) -> Iterator[str]:
    """Yield `server_url` rewritten to go through a PgBouncer of its own on loopback.

    Clients log in to PgBouncer as anyone (auth_type any); it logs in to the server as the
    URL's user. Run as root, PgBouncer drops to the user that owns the server's socket
    directory (the embedded server's), or `nobody` for a TCP server. `log_file`: where its
    log is copied when it stops.
    """
    binary = pgbouncer_path()
    url = make_url(server_url)
    socket_dir = url.query.get("host")
    host = str(socket_dir) if socket_dir else (url.host or "127.0.0.1")
    target = f"host={host} port={url.port or 5432} user={url.username or 'postgres'}"
    if url.password:
        target += f" password={_quoted(url.password)}"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="chad-pgbouncer-") as tmp:
        work = Path(tmp)
        run_as = None
        if os.geteuid() == 0:
            run_as = (
                pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "nobody"
            )
        settings = [
            "[databases]",
            f"* = {target}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = any",
            f"pool_mode = {pool_mode}",
            f"default_pool_size = {pool_size}",
            "max_client_conn = 500",
            f"logfile = {work / 'pgbouncer.log'}",
            f"pidfile = {work / 'pgbouncer.pid'}",
            "ignore_startup_parameters = extra_float_digits",
            # While the server is down, queued clients get an error (the service answers
            # 503) within seconds rather than PgBouncer's default 120 s, and once it is
            # back the first login is tried within a second, not 15 s (DATABASE_README).
            "query_wait_timeout = 5",
            "server_login_retry = 1",
        ]
        if run_as is not None:
            settings.append(f"user = {run_as}")
        ini = work / "pgbouncer.ini"
        ini.write_text("\n".join(settings) + "\n")
        if run_as is not None:
            shutil.chown(work, run_as)
            os.chmod(work, 0o700)
        # Its log goes to the log file; a pipe nobody reads would fill and stop it.
        process = subprocess.Popen(
            [binary, "--quiet", str(ini)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(port, process, work / "pgbouncer.log")
            yield url.set(host="127.0.0.1", port=port, query={}).render_as_string(
                hide_password=False
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if log_file is not None and (work / "pgbouncer.log").exists():
                shutil.copy(work / "pgbouncer.log", log_file)


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text() if log.exists() else "(no log)"
            raise RuntimeError(f"pgbouncer exited ({process.returncode}): {text[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"pgbouncer did not listen on 127.0.0.1:{port} within 15 s")
