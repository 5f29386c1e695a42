"""
The per-event cost of ``use_session``: server CPU per ack on rain_ws (uvicorn)
for an event on a channel without sessions, and for events on a
``use_session`` channel that only read the session (one load) and that write
it (one load, then a locked read and a save), with the db and the cache
session backends.

    .venv/bin/python bench/sessions.py [--quick]

Prints a table and replaces the "Sessions" section of bench/RESULTS.md
(unless --quick). Loopback only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402
from bench.loadgen import process_cpu_seconds  # noqa: E402
from tests.support.servers import free_port  # noqa: E402

SECTION_TITLE = "## Sessions: per-event cost of use_session"

ENGINES = {
    "db": ("django.contrib.sessions.backends.db", "0"),
    "db, CONN_MAX_AGE=60": ("django.contrib.sessions.backends.db", "60"),
    "cache": ("django.contrib.sessions.backends.cache", "0"),
}
CASES = [
    ("no session (echo on /)", "/", '["echo",1]'),
    ("use_session, read", "/notes", '["read","notes"]'),
    ("use_session, write", "/notes", '["write","n",1]'),
]


async def client(url: str, cookie: str, namespace: str, event: str, count: int) -> None:
    async with websockets.connect(url, additional_headers={"Cookie": cookie}, compression=None) as ws:
        await ws.recv()
        await ws.send("40" if namespace == "/" else f"40{namespace},")
        assert (await ws.recv()).startswith("40")
        prefix = "42" if namespace == "/" else f"42{namespace},"
        for number in range(count):
            await ws.send(f"{prefix}{number}{event}")
            while True:
                frame = await ws.recv()
                if frame == "2":
                    await ws.send("3")
                elif frame.startswith("43"):
                    break


async def measure(url: str, cookie: str, pid: int, namespace: str, event: str, clients: int, count: int) -> float:
    await client(url, cookie, namespace, event, 20)  # warm up
    before = process_cpu_seconds(pid)
    await asyncio.gather(*(client(url, cookie, namespace, event, count) for _ in range(clients)))
    return (process_cpu_seconds(pid) - before) / (clients * count) * 1e6


def run_engine(name: str, clients: int, count: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "BENCH_DB": str(Path(folder) / "db.sqlite3"),
            "BENCH_SESSION_ENGINE": ENGINES[name][0],
            "BENCH_CONN_MAX_AGE": ENGINES[name][1],
            "DJANGO_SETTINGS_MODULE": "bench.servers.settings_sessions",
            "PYTHONPATH": str(ROOT),
        }
        subprocess.run([sys.executable, "-m", "django", "migrate", "-v", "0"], env=env, cwd=ROOT, check=True, timeout=120)
        port = free_port()
        server = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
             "--loop", "asyncio", "--ws", "websockets-sansio", "--no-access-log", "--log-level", "warning",
             "--lifespan", "off", "bench.servers.rain_asgi:application"],
            env=env, cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/session/", timeout=2) as response:
                        cookie = f"sessionid={response.read().decode()}"
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the bench server did not start") from None
                    time.sleep(0.1)
            url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
            return [
                asyncio.run(asyncio.wait_for(measure(url, cookie, server.pid, ns, event, clients, count), 300))
                for _, ns, event in CASES
            ]
        finally:
            server.terminate()
            server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few events only; RESULTS.md is left alone")
    quick = parser.parse_args().quick
    clients, count = (2, 50) if quick else (10, 1000)
    results = {name: run_engine(name, clients, count) for name in ENGINES}
    lines = [
        SECTION_TITLE,
        "",
        f"rain_ws on uvicorn, server on core 1, {clients} connections x {count} emits with ack each; "
        "server CPU per ack in µs (the extra cost over the first row is the session's).",
        "",
        "| event | db backend (SQLite) | db, CONN_MAX_AGE=60 | cache backend (LocMemCache) |",
        "|---|---:|---:|---:|",
    ]
    for index, (label, _, _) in enumerate(CASES):
        figures = " | ".join(f"{results[name][index]:.1f}" for name in ENGINES)
        lines.append(f"| {label} | {figures} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if not quick:
        run.write_section(SECTION_TITLE, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
