"""A large label file is streamed and still imported all or nothing: a bad line in the middle
refuses the whole file (the message names the file, the line, the field and the fix) and
stores nothing; `calibrate import` killed with kill -9, while it reads the file or while it
writes, stores nothing or everything, never a part, and the next import stores the file once
and removes the staging folder the killed one left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalkeeper.calibration import LabelFileError, import_labels
from evalkeeper.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
N = 100_000
JUDGE = "factual_match"


@pytest.fixture(scope="module")
def judged_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse file holding N runs judged by JUDGE (written by SQL: fast)."""
    path = tmp_path_factory.mktemp("large") / "template.duckdb"
    with Warehouse(path).connect(checkpoint=True) as con:
        con.execute(
            f"""
            INSERT INTO scores
            SELECT 'exp-big', 'ex-' || lpad(i::VARCHAR, 6, '0'), 0, '{JUDGE}', 'v1', 'h', 1.0,
                   true, NULL, NULL, false, NULL, TIMESTAMPTZ '2026-11-01 00:00:00+00', 'dv',
                   'cat', 'replay', NULL, NULL, 'scripted-judge-2026-01-01', 'abc'
            FROM range({N}) r(i)
            """
        )
    return path


@pytest.fixture
def warehouse(judged_file: Path, tmp_path: Path) -> Warehouse:
    import shutil

    target = tmp_path / "w.duckdb"
    shutil.copy(judged_file, target)
    return Warehouse(target, lock_wait_s=30)


def _labels(path: Path, bad: dict[int, str] | None = None) -> Path:
    """N labels (line i + 2 labels run i); `bad` replaces the line of some runs."""
    bad = bad or {}
    with path.open("w") as fh:
        fh.write("experiment_id,example_id,repetition,judge,annotator,label,note\n")
        for i in range(N):
            row = bad.get(i) or f"exp-big,ex-{i:06d},0,{JUDGE},ann,{'pass' if i % 3 else 'fail'},"
            fh.write(row + "\n")
    return path


def _stored(wh: Warehouse) -> int:
    return int(wh.rows("SELECT count(*) FROM human_labels")[0][0])


def test_a_bad_line_in_the_middle_of_a_large_file_stores_nothing(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    middle = N // 2
    path = _labels(
        tmp_path / "labels.csv",
        {
            middle: f"exp-big,ex-{middle:06d},0,{JUDGE},ann,maybe,",  # checked as it is read
            middle + 10: f"exp-big,ex-nope,0,{JUDGE},ann,pass,",  # checked against the runs
        },
    )
    with pytest.raises(LabelFileError) as info:
        import_labels(warehouse, path)
    text = str(info.value)
    line = middle + 2  # the header is line 1
    assert text.splitlines() == [
        f"{path}:{line}: label 'maybe' is not one of {JUDGE}'s labels; write one of pass, fail",
        f"{path}:{line + 10}: judge '{JUDGE}' did not score experiment 'exp-big' example "
        "'ex-nope' repetition 0; check the ids (`evalkeeper experiments`)",
        f"{path}: nothing imported; fix the lines above and import the file again",
    ]
    assert _stored(warehouse) == 0
    fixed = _labels(tmp_path / "fixed.csv")
    assert import_labels(warehouse, fixed).inserted == N
    assert _stored(warehouse) == N


def test_every_problem_is_counted_and_the_first_are_shown_in_line_order(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    # problems of both kinds, interleaved: the first 20 by line, whatever found them
    bad = {
        i: (
            f"exp-big,ex-x{i},0,{JUDGE},ann,pass,"
            if i % 2
            else f"exp-big,ex-{i:06d},0,{JUDGE},,pass,"
        )
        for i in range(1_000, 1_300)
    }
    path = _labels(tmp_path / "many.csv", bad)
    with pytest.raises(LabelFileError) as info:
        import_labels(warehouse, path)
    lines = str(info.value).splitlines()
    assert [int(x.split(":")[1]) for x in lines[:20]] == list(range(1_002, 1_022))
    assert "missing field 'annotator'" in lines[0] and "did not score" in lines[1]
    assert lines[20] == "…and 280 more problems"
    assert info.value.count == 300
    assert _stored(warehouse) == 0


def _import_process(wh: Warehouse, path: Path, tmpdir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TMPDIR": str(tmpdir), "EVALKEEPER_LOCK_WAIT_S": "30"}
    return subprocess.Popen(
        [sys.executable, "-m", "evalkeeper.cli", "calibrate", "import", str(path),
         "--warehouse", str(wh.path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _wait_for(tmpdir: Path, name: str, proc: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = [
            p for p in tmpdir.glob(f"evalkeeper-batch-{proc.pid}-*/{name}") if p.stat().st_size
        ]
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()[0].decode()
        time.sleep(0.005)
    raise AssertionError(f"{name} never appeared")


@pytest.mark.parametrize("kill_at", ["staged.jsonl", "human_labels.parquet"])
def test_a_killed_import_stores_nothing_or_everything_and_the_next_stores_it_once(
    warehouse: Warehouse, tmp_path: Path, kill_at: str
) -> None:
    """Killed while it reads the file (nothing is stored), or once the rows to write are
    staged (the one transaction has committed or not: all the labels, or none)."""
    path, tmpdir = _labels(tmp_path / "labels.csv"), tmp_path / "tmp"
    tmpdir.mkdir()
    proc = _import_process(warehouse, path, tmpdir)
    _wait_for(tmpdir, kill_at, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = _stored(warehouse)
    if kill_at == "staged.jsonl":
        assert stored == 0
    else:
        assert stored in (0, N)
    assert list(tmpdir.glob(f"evalkeeper-batch-{proc.pid}-*"))  # what it left
    again = _import_process(warehouse, path, tmpdir)
    out = again.communicate()[0].decode()
    assert again.returncode == 0, out
    assert f"{N} labels read: {N - stored} new" in out
    assert _stored(warehouse) == N
    assert warehouse.rows(
        "SELECT count(*) FROM (SELECT DISTINCT item_id, judge, annotator FROM human_labels)"
    ) == [(N,)]
    assert not list(tmpdir.glob(f"evalkeeper-batch-{proc.pid}-*"))  # removed by the next


def test_staged_text_comes_back_exactly(warehouse: Warehouse, tmp_path: Path) -> None:
    """Notes with commas, quotes, new lines and non-ASCII text, and times with an offset,
    survive the staging file; rows given by item_id take the run's ids from the draw."""
    import json

    note = 'said "maybe", then\nchanged her mind; ünïcode, trailing space '
    path = tmp_path / "odd.jsonl"
    rows = [
        {"experiment_id": "exp-big", "example_id": "ex-000001", "judge": JUDGE,
         "annotator": "a,b", "label": "fail", "time": "2026-11-30T14:03:00+02:00", "note": note},
        {"experiment_id": "exp-big", "example_id": "ex-000002", "repetition": "0",
         "judge": JUDGE, "annotator": '"q"', "label": "pass"},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert import_labels(warehouse, path).inserted == 2
    stored = warehouse.rows(
        "SELECT example_id, annotator, label, note, epoch(labelled_at) FROM human_labels "
        "ORDER BY example_id"
    )
    assert stored[0][:4] == ("ex-000001", "a,b", "fail", note.strip())
    assert stored[0][4] == 1796040180  # 2026-11-30T12:03:00Z
    assert stored[1][:4] == ("ex-000002", '"q"', "pass", None)
