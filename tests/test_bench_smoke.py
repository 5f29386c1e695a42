"""
The benchmark runs end to end: bench/run.py in quick mode starts rain_ws on
uvicorn, drives it with the load generator in every scenario and prints one
table per scenario; the long-polling scenario (bench/polling.py) runs on one
process and, with redis-server installed, on two (requests relayed, and a
WebSocket upgraded on the process that does not own the session). Only that
each scenario produced figures is checked; the figures themselves are not
asserted.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROW = "rain_ws on uvicorn"
#: The long-polling table's rows of rain_ws in a quick run.
POLLING_ONE = "rain_ws on uvicorn, 1 process"
POLLING_RELAYED = [
    "rain_ws, 2 processes on Redis, every request relayed",
    "rain_ws, 2 processes on Redis, upgraded to WebSocket on the other process (relayed)",
]


def tables(output: str, rows: tuple[str, ...] = (ROW,)) -> dict[str, dict[str, str]]:
    """Each printed table's title and its row named in ``rows``, by column (the last one found)."""
    return {title: found[-1] for title, found in all_rows(output, rows).items() if found}


def all_rows(output: str, rows: tuple[str, ...]) -> dict[str, list[dict[str, str]]]:
    """Each printed table's title and its rows named in ``rows``, by column."""
    found: dict[str, list[dict[str, str]]] = {}
    title = ""
    header: list[str] = []
    for line in output.splitlines():
        if not line.startswith("|"):
            if line.strip():
                title = line.strip()
            header = []
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not header:
            header = cells
        elif cells[0] in rows:
            found.setdefault(title, []).append(dict(zip(header, cells)))
    return found


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_quick_benchmark_of_rain_ws_on_uvicorn():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--servers", "rain_ws-uvicorn"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = tables(done.stdout)
    assert number(rows["Emit with ack: CPU per event"]["acks/s"]) > 0, done.stdout
    assert number(rows["Connect rate"]["measured connects/s"]) > 0, done.stdout
    assert number(rows["Idle memory"]["RSS after MiB"]) > 0, done.stdout
    assert number(rows["Fan-out to a room"]["room of 5: p50 ms"]) > 0, done.stdout
    held = rows["Connections held on one process"]
    assert number(held["connections"]) == 20 and number(held["lost"]) == 0, done.stdout
    polling = {row["configuration"]: row for row in all_rows(done.stdout, (POLLING_ONE, *POLLING_RELAYED))["Long-polling"]}
    assert number(polling[POLLING_ONE]["acks/s"]) > 0, done.stdout
    assert number(polling[POLLING_ONE]["server CPU µs/ack"]) > 0, done.stdout
    if shutil.which("redis-server") is not None:
        for label in POLLING_RELAYED:
            assert number(polling[label]["acks/s"]) > 0, done.stdout
            assert number(polling[label]["redis-server CPU µs/ack"]) >= 0, done.stdout


def test_quick_sessions_benchmark():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sessions.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| use_session, write |")]
    assert len(rows) == 1, done.stdout
    assert all(number(cell) > 0 for cell in rows[0].strip("|").split("|")[1:]), rows[0]


def test_quick_fanout_across_processes_benchmark():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fanout.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| rain_ws, 2 processes, ")]
    assert len(rows) == 2, done.stdout


def test_quick_recovery_benchmark():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--scenarios", "recovery", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    off, on = "recovery off (RECOVERY_WINDOW 0)", "recovery on (120 s)"
    cpu = all_rows(done.stdout, (off, on))["Recovery: CPU per event"]
    rows = {row["server"]: row for row in cpu if "offsets" in row}
    # Events carry an offset with recovery on, and only then.
    assert rows[on]["offsets"] == "yes" and rows[off]["offsets"] == "no", done.stdout
    assert all(number(row["reflect: CPU µs/event"]) > 0 for row in rows.values()), done.stdout
    memory = [line for line in done.stdout.splitlines() if line.startswith("| 50 | 50 |")]
    assert len(memory) == 1, done.stdout
    cells = [cell.strip() for cell in memory[0].strip("|").split("|")]
    # Every sampled stand-in was recovered with the 50 events sent while it was gone.
    assert cells[-2:] == ["2 / 2", "50"], memory[0]
    if shutil.which("redis-server") is not None and (ROOT / "tests" / "js" / "node_modules").is_dir():
        drained = "drained, recovery on"
        found = all_rows(done.stdout, (drained, "stopped (SIGTERM), recovery on"))["Recovery: drain against a stop"]
        for row in found:
            assert number(row["clients"]) == 40 and number(row["all reconnected s"]) > 0, done.stdout
        row = next(row for row in found if row["case"] == drained)
        # The recovered clients missed nothing.
        assert number(row["missed by recovered"]) == 0, done.stdout


def test_quick_cluster_and_room_benchmarks():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cluster.py"), "--quick", "--deployments", "rain_ws,node"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    label = "rain_ws on uvicorn, RedisPubSubChannelLayer"
    found = all_rows(done.stdout, (label,))
    held = next(rows[0] for rows in found.values() if "connections opened" in rows[0])
    # 300 connections on two processes, all still open and pinged after the rounds.
    assert number(held["connections opened"]) == 300 and number(held["lost"]) == 0, done.stdout
    assert number(held["open after the rounds"]) == 300 and number(held["pinged after the rounds"]) == 300, done.stdout
    timed = [rows[0] for rows in found.values() if "members" in rows[0]]
    # The broadcast reached all 300 members, the room its 50.
    assert sorted(number(row["members"]) for row in timed) == [50, 300], done.stdout
    assert all(number(row["max ms"]) > 0 for row in timed), done.stdout

    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "room.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    row = tables(done.stdout)["Fan-out to a room of 200"]
    assert number(row["rounds"]) == 3 and number(row["p50 ms"]) > 0, done.stdout


def test_quick_scale_curves_benchmark():
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "scale.py"), "--sizes", "100,300", "--duration", "2",
            "--warmup", "1", "--ping-intervals", "2", "--no-write",
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [row for found in all_rows(done.stdout, ("100", "300")).values() for row in found]
    rain = [row for row in rows if "acks/s" in row]
    floor = [row for row in rows if "acks/s" not in row]
    # Both sizes held, pinged and echoed by rain_ws, and held and pinged by the raw ASGI floor.
    assert [number(row["held"]) for row in rain] == [100, 300], done.stdout
    for row in rain:
        assert number(row["pings/s"]) > 0 and number(row["acks/s"]) > 0 and number(row["CPU/ack (µs)"]) > 0, done.stdout
    assert [number(row["held"]) for row in floor] == [100, 300], done.stdout
    assert "Idle connections lost during the run: 0." in done.stdout, done.stdout
    assert "connections lost: 0)" in done.stdout, done.stdout


def test_a_benchmark_replaces_its_own_section_of_the_results_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.path.insert(0, str(ROOT))
    from bench import run

    results = tmp_path / "RESULTS.md"
    monkeypatch.setattr(run, "RESULTS", results)
    run.write_section("## B", "\n## B\n\nfirst\n")
    assert results.read_text() == "## B\n\nfirst\n"
    results.write_text("# Results\n\n## A\n\na\n\n## B\n\nold\n\n## C\n\nc\n")
    run.write_section("## B", "## B\n\nnew\n")
    assert results.read_text() == "# Results\n\n## A\n\na\n\n## B\n\nnew\n\n## C\n\nc\n"
    run.write_section("## C", "## C\n\nnewer\n\n")
    run.write_section("## D", "## D\n\nd\n")
    assert results.read_text() == "# Results\n\n## A\n\na\n\n## B\n\nnew\n\n## C\n\nnewer\n\n## D\n\nd\n"
    # A title that is only the start of another section's is not that section.
    run.write_section("## A", "## A\n\naa\n")
    run.write_section("## A lot", "## A lot\n\nmore\n")
    assert results.read_text().count("## A") == 2 and "## A\n\naa\n\n## B" in results.read_text()
