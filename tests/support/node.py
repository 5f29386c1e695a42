"""Run the JavaScript scripts of ``tests/js`` under node and read what they observed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parents[1] / "js"


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        return "tests/js/node_modules is missing: run `npm install` in tests/js (scripts/run_tests.sh does)"
    return None


_MISSING = _missing()

#: Skips a test, with the reason, when node or the JavaScript dependencies are missing.
requires_node = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


def run_node(script: str, *args: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """
    Run ``tests/js/<script>`` with ``args`` and return the JSON objects it
    printed, one per line.

    The timeout is a hard limit: a script stuck on a socket is killed, so a
    hanging server fails the test instead of hanging the run. A script that
    exits non-zero fails the test with its output.
    """
    command = ["node", str(JS_DIR / script), *args]
    try:
        done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(
            f"{' '.join(command)} did not finish within {timeout} s\n"
            f"stdout:\n{expired.stdout}\nstderr:\n{expired.stderr}"
        )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited with {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
