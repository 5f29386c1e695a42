"""
A real nginx on 127.0.0.1 in front of several server processes, for the
tests of long-polling and WebSockets across processes.

The configuration is generated here, as docs/deployment.rst ("Several
processes without sticky sessions") gives it: one ``upstream`` with the servers in
plain round robin (no ``ip_hash``, no affinity of any kind, so that
consecutive requests of one client land on different processes), HTTP/1.1
to the upstream, the ``Upgrade`` and ``Connection`` headers passed on for
WebSockets (or, with ``websockets=False``, not passed: WebSockets are then
blocked at the proxy, as some corporate proxies do) and a read timeout above
any ping interval. Every request is logged as one JSON object with its
status and the upstream that answered it, so a test can assert what the
proxy saw.

nginx runs as a child of the test, in the foreground (``daemon off``), with
its prefix, pid file, logs and temporary files in a temporary directory, on
a free port, and is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import free_port

__all__ = ["Nginx", "nginx_binary", "nginx_config", "run_nginx"]

INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", "nginx"]

#: Seconds nginx waits for an upstream's answer: above any PING_INTERVAL, so
#: a long-polling GET or a quiet WebSocket is never cut by the proxy.
READ_TIMEOUT = 60

#: One JSON object per request: what the tests assert on.
LOG_FORMAT = (
    '{"status":$status,"method":"$request_method","uri":"$request_uri",'
    '"upstream":"$upstream_addr","upstream_status":"$upstream_status",'
    '"request_time":$request_time,"upgrade":"$http_upgrade"}'
)


def nginx_binary() -> str:
    """
    The path of ``nginx``, installing Debian's package first when it is
    missing and this process may (root); otherwise the test is skipped with
    the command that installs it.
    """
    found = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
    )
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("nginx is not installed: run " + " ".join(INSTALL) + " as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], INSTALL):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        pytest.fail("nginx is still missing after installing its package")
    return found


def nginx_config(
    directory: Path,
    port: int,
    upstreams: Sequence[int],
    websockets: bool = True,
    owners: Mapping[str, int] | None = None,
) -> str:
    """
    The configuration of a proxy on ``port`` to the servers on ``upstreams``
    (ports of 127.0.0.1), in round robin; with ``websockets`` False, the
    ``Upgrade`` and ``Connection`` headers are not passed on, so no
    WebSocket gets through.

    ``owners`` (process id: port of that process) makes the proxy perverse:
    a request with a ``sid`` goes to a process other than the one whose id
    the sid starts with, the session's owner, so that every long-polling
    request after the handshake and every upgrade is relayed.
    """
    servers = "\n".join(f"        server 127.0.0.1:{upstream};" for upstream in upstreams)
    backend = "rain_ws"
    away = ""
    if owners:
        ports = list(upstreams)
        routes = "\n".join(
            f"        ~^{process_id}\\. 127.0.0.1:{ports[(ports.index(owner) + 1) % len(ports)]};"
            for process_id, owner in owners.items()
        )
        away = f"""
    # Every request of a session goes to a process that does not hold it.
    map $arg_sid $away_from_owner {{
        default rain_ws;
{routes}
    }}
"""
        backend = "$away_from_owner"
    if websockets:
        upgrade = (
            "            proxy_set_header Upgrade $http_upgrade;\n"
            "            proxy_set_header Connection $connection_upgrade;\n"
        )
    else:
        upgrade = "            # WebSockets blocked: Upgrade and Connection are not passed on.\n"
    # The master runs as whoever runs the tests; as root, its workers would
    # switch to "nobody", who cannot write in the temporary directory.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""\
{user}worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    log_format rain_ws escape=json '{LOG_FORMAT}';
    access_log {directory}/access.log rain_ws;

    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

{away}
    # Round robin: no ip_hash, no sticky sessions.
    upstream rain_ws {{
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://{backend};
            proxy_http_version 1.1;
{upgrade}            # $http_host, not $host: the browser's port, which is not 80 here.
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout {READ_TIMEOUT}s;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    """One nginx process in front of ``upstreams``."""

    binary: str
    directory: Path
    upstreams: tuple[int, ...]
    websockets: bool = True
    owners: Mapping[str, int] | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "nginx.conf"

    @property
    def access_log_path(self) -> Path:
        return self.directory / "access.log"

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_size(self) -> int:
        """Where the access log ends now: pass it to :meth:`requests` as ``since``."""
        path = self.access_log_path
        return path.stat().st_size if path.exists() else 0

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """The requests logged so far (after offset ``since``), one dict each."""
        path = self.access_log_path
        if not path.exists():
            return []
        with path.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def start(self) -> None:
        """Write the configuration, start nginx and return once it accepts connections."""
        assert self.process is None, "nginx is already running"
        config = nginx_config(self.directory, self.port, self.upstreams, self.websockets, self.owners)
        self.config_path.write_text(config)
        command = [
            self.binary,
            "-p", str(self.directory),
            "-c", str(self.config_path),
            "-e", str(self.directory / "error.log"),
            "-g", "daemon off;",
        ]
        with (self.directory / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"nginx exited early:\n{self.error_log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nginx did not listen in time:\n{self.error_log()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop nginx by its PID (SIGTERM: a fast shutdown) and wait until it is gone."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def run_nginx(
    upstreams: Sequence[int], websockets: bool = True, owners: Mapping[str, int] | None = None
) -> Iterator[Nginx]:
    """
    A running nginx in front of ``upstreams`` in a fresh temporary directory,
    stopped on exit (see :func:`nginx_config` for the options).
    """
    binary = nginx_binary()
    with tempfile.TemporaryDirectory(prefix="rain_ws-nginx-") as directory:
        proxy = Nginx(binary, Path(directory), tuple(upstreams), websockets, owners)
        proxy.start()
        try:
            yield proxy
        finally:
            proxy.stop()
