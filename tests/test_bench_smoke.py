"""
The benchmark runs end to end: bench/run.py in quick mode starts rain_ws on
uvicorn, drives it with the load generator and prints its table row. Only
that acks came back is checked; the figures themselves are not asserted.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_of_rain_ws_on_uvicorn():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--servers", "rain_ws-uvicorn"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| rain_ws on uvicorn |")]
    assert len(rows) == 1, done.stdout
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    header = [cell.strip() for cell in done.stdout.splitlines()[0].strip("|").split("|")]
    acks_per_second = float(cells[header.index("acks/s")].replace(",", ""))
    assert acks_per_second > 0
