"""A killed `evalkeeper traces ingest` (kill -9) leaves nothing running and nothing behind:
its redaction workers and the multiprocessing resource tracker end within seconds, and the
next ingest removes the staging folders a dead writer left in the temporary folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.traces.test_redaction_pool import _pii_lines
from tests.traces.trace_lines import append

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> dict[int, str]:
    """The live processes whose parent is `pid`: pid -> command line."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out[int(stat.parent.name)] = cmdline
    return out


def _threads(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return 0


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_killed_ingest_leaves_no_workers_and_the_next_removes_its_leftovers(
    tmp_path: Path,
) -> None:
    path, tmpdir = tmp_path / "pii.jsonl", tmp_path / "tmp"
    tmpdir.mkdir()
    append(path, _pii_lines(0, 30_000))
    env = {
        **os.environ,
        "EVALKEEPER_WAREHOUSE": str(tmp_path / "w.duckdb"),
        "EVALKEEPER_REDACTION_KEY": "killed-ingest-test-key",
        "EVALKEEPER_REDACTION_WORKERS": "2",
        "TMPDIR": str(tmpdir),
        "PREFECT_API_URL": "",
    }
    cmd = [sys.executable, "-m", "evalkeeper.cli", "traces", "ingest", "--source", f"jsonl:{path}"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        # until both workers run (past their start: their parent-watch thread is up)
        while len(
            workers := {p for p, c in _children(proc.pid).items() if "spawn_main" in c}
        ) < 2 or not all(_threads(p) >= 2 for p in workers):
            assert proc.poll() is None, "the ingest ended before its workers started"
            assert time.monotonic() < deadline, "the redaction workers did not start"
            time.sleep(0.05)
        children = set(_children(proc.pid))  # the workers and the resource tracker
        assert any("resource_tracker" in c for c in _children(proc.pid).values())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert workers <= children
    deadline = time.monotonic() + 5
    while alive := {p for p in children if _alive(p)}:
        assert time.monotonic() < deadline, f"still running 5 s after kill -9: {alive}"
        time.sleep(0.05)

    # what the killed ingest left in the temporary folder (its staging Parquet files), as
    # the one seen had; a live writer's folder stays
    left = tmpdir / f"evalkeeper-batch-{proc.pid}-killed"
    left.mkdir(exist_ok=True)
    (left / "traces.parquet").write_bytes(b"\0" * 2**20)
    live = tmpdir / f"evalkeeper-batch-{os.getpid()}-live"
    live.mkdir()
    small = tmp_path / "small.jsonl"
    append(small, _pii_lines(100_000, 20))
    again = subprocess.run(
        [*cmd[:-1], f"jsonl:{small}"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert not list(tmpdir.glob(f"evalkeeper-batch-{proc.pid}-*"))
    assert live.is_dir()
    assert [p.name for p in tmpdir.glob("evalkeeper-batch-*")] == [live.name]
