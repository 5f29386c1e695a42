"""
A real redis-server on 127.0.0.1 for the tests that span several processes.

Each server runs on a free port in a temporary directory, keeps nothing on
disk (no RDB snapshots, no append-only file: a restart starts empty, as a
crashed Redis without persistence does) and is stopped by its PID, so the
tests can take Redis away and bring it back on the same port mid-test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.servers import free_port

__all__ = ["RedisServer", "redis_server_binary", "run_redis"]

INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", "redis-server"]


def redis_server_binary() -> str:
    """
    The path of ``redis-server``, installing Debian's package first when it
    is missing and this process may (root); otherwise the test is skipped
    with the command that installs it.
    """
    found = shutil.which("redis-server")
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("redis-server is not installed: run " + " ".join(INSTALL) + " as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], INSTALL):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail("redis-server is still missing after installing its package")
    return found


class RedisServer:
    """One redis-server process, which can be stopped and started again on its port."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.log_path = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Start the server and return once it answers PING."""
        assert self.process is None, "redis-server is already running"
        command = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not self._answers_ping():
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"redis-server exited early:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer in time:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server by its PID and wait until it is gone."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(64).startswith(b"+PONG")
        except OSError:
            return False


@contextmanager
def run_redis() -> Iterator[RedisServer]:
    """A running redis-server in a fresh temporary directory, stopped on exit."""
    binary = redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="rain_ws-redis-") as directory:
        server = RedisServer(binary, Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()
