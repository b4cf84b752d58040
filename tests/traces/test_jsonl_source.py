"""The jsonl source on real files that are appended to, rotated, truncated and added."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from evalkeeper.settings import Settings
from evalkeeper.traces import sources
from evalkeeper.traces.model import Trace
from evalkeeper.traces.sources import Cursor, JsonlSource, SourceError, open_source
from tests.traces.trace_lines import append, line


def read(
    src: sources.TraceSource, cursor: Cursor | None, max_traces: int = 1000
) -> tuple[list[str], list[str], Cursor]:
    traces, errors, new = asyncio.run(src.read(cursor, max_traces=max_traces))
    json.dumps(new)  # JSON-serialisable, as stored
    return [t.trace_id for t in traces], errors, json.loads(json.dumps(new))


def ids(*numbers: int) -> list[str]:
    return [f"t-{i:05d}" for i in numbers]


def test_appended_lines_are_read_once_and_a_partial_last_line_waits(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    append(path, line(1) + line(2))
    src = JsonlSource(path)
    got, errors, cursor = read(src, None)
    assert got == ids(1, 2) and errors == []
    assert read(src, cursor)[0] == []  # nothing new
    third = line(3)
    append(path, line(4)[:0] + third[:40])  # the application is half-way through a line
    got, errors, cursor = read(src, cursor)
    assert got == [] and errors == []  # not half-parsed, not an error
    append(path, third[40:] + line(4))
    got, errors, cursor = read(src, cursor)
    assert got == ids(3, 4) and errors == []


def test_a_bad_line_is_reported_with_its_line_and_the_good_ones_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    append(path, line(1) + '{"trace_id": "t-x", "time": "noon", "inputs": {}}\n' + line(2))
    src = JsonlSource(path)
    got, errors, cursor = read(src, None)
    assert got == ids(1, 2)
    assert errors == [f'{path}:2: field "time": not ISO 8601; write e.g. 2026-11-30T14:03:00Z']
    append(path, "\n" + line(3) + "not json\n")  # line numbers continue across reads
    got, errors, cursor = read(src, cursor)
    assert got == ids(3)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:6: not valid JSON")


def test_max_traces_leaves_the_cursor_after_the_last_returned_line(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    append(path, "".join(line(i) for i in range(10)))
    src = JsonlSource(path)
    seen: list[str] = []
    cursor: Cursor | None = None
    for expected in (4, 4, 2, 0):
        got, _, cursor = read(src, cursor, max_traces=4)
        assert len(got) == expected
        seen += got
    assert seen == ids(*range(10))


def test_the_cursor_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    append(path, line(1) + line(2))
    _, _, cursor = read(JsonlSource(path), None)
    stored = json.dumps(cursor)  # as the warehouse keeps it
    append(path, line(3))
    again = open_source(f"jsonl:{path}", Settings(warehouse=tmp_path / "w.duckdb"))
    assert read(again, json.loads(stored))[0] == ids(3)


def test_a_rotated_file_is_finished_under_its_new_name_and_the_new_file_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.jsonl"
    append(path, line(1) + line(2))
    src = JsonlSource(path)
    _, _, cursor = read(src, None)
    append(path, line(3))  # written just before the rotation, not read yet
    path.rename(tmp_path / "app.jsonl.1")
    got, _, cursor = read(src, cursor)  # the new file does not exist yet
    assert got == ids(3)
    append(path, line(4) + line(5))
    got, _, cursor = read(src, cursor)
    assert got == ids(4, 5)
    append(path, line(6))
    assert read(src, cursor)[0] == ids(6)


def test_a_file_replaced_under_the_same_name_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    append(path, line(1) + line(2))
    src = JsonlSource(path)
    _, _, cursor = read(src, None)
    path.rename(tmp_path / "old.jsonl.gz")
    (tmp_path / "old.jsonl.gz").unlink()  # rotated and compressed away
    append(path, line(7))
    got, _, cursor = read(src, cursor)
    assert got == ids(7)
    assert [f["path"] for f in cursor["files"].values()] == [str(path)]  # the old one dropped


def test_a_truncated_file_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    append(path, line(1) + line(2) + line(3))
    src = JsonlSource(path)
    _, _, cursor = read(src, None)
    path.write_text(line(8))  # truncated (same inode), shorter than the offset
    got, _, cursor = read(src, cursor)
    assert got == ids(8)
    # truncated again and rewritten past the old offset before the next read
    with path.open("w") as fh:
        fh.write(line(20) + line(21) + line(22))
    got, _, cursor = read(src, cursor)
    assert got == ids(20, 21, 22)


def test_a_directory_reads_every_jsonl_file_and_files_added_later(tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    append(folder / "a.jsonl", line(1) + line(2))
    append(folder / "b.jsonl", line(3))
    append(folder / "notes.txt", "not a trace\n")
    src = open_source(f"jsonl:{folder}", Settings(warehouse=tmp_path / "w.duckdb"))
    got, errors, cursor = read(src, None)
    assert got == ids(1, 2, 3) and errors == []
    append(folder / "b.jsonl", line(4))
    append(folder / "c.jsonl", line(5) + "{oops\n")
    got, errors, cursor = read(src, cursor)
    assert got == ids(4, 5)
    assert len(errors) == 1 and errors[0].startswith(f"{folder / 'c.jsonl'}:2: not valid JSON")
    assert read(src, cursor)[0] == []


def test_small_chunks_split_lines_anywhere_and_lose_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "CHUNK_BYTES", 7)
    path = tmp_path / "app.jsonl"
    append(path, "".join(line(i) for i in range(50)))
    assert read(JsonlSource(path), None)[0] == ids(*range(50))


def test_a_line_longer_than_the_limit_is_reported_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "CHUNK_BYTES", 64)
    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 1024)
    path = tmp_path / "app.jsonl"
    huge = line(2, inputs={"blob": "x" * 5000})
    append(path, line(1) + huge[:3000])
    src = JsonlSource(path)
    got, errors, cursor = read(src, None)
    assert got == ids(1) and errors == []  # the long line is not finished: wait for it
    append(path, huge[3000:] + line(3))
    got, errors, cursor = read(src, cursor)
    assert got == ids(3)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:2: line of {len(huge):,} bytes")


def test_specs_that_cannot_be_opened_name_the_fix(tmp_path: Path) -> None:
    s = Settings(warehouse=tmp_path / "w.duckdb")
    with pytest.raises(SourceError, match=r"unknown trace source 'kafka:x': use jsonl:PATH"):
        open_source("kafka:x", s)
    with pytest.raises(SourceError, match="no such file or directory; give an existing"):
        open_source(f"jsonl:{tmp_path / 'missing.jsonl'}", s)
    with pytest.raises(SourceError, match="write jsonl:PATH"):
        open_source("jsonl:", s)
    append(tmp_path / "a.jsonl", line(1))
    with pytest.raises(SourceError, match="not a jsonl cursor"):
        read(JsonlSource(tmp_path / "a.jsonl"), {"offset": 3})


def test_the_spec_is_the_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    append(tmp_path / "a.jsonl", line(1))
    monkeypatch.chdir(tmp_path)
    assert JsonlSource("a.jsonl").spec == f"jsonl:{os.path.abspath(tmp_path / 'a.jsonl')}"
    assert JsonlSource("./a.jsonl").spec == JsonlSource(tmp_path / "a.jsonl").spec


def test_traces_come_back_as_models(tmp_path: Path) -> None:
    append(tmp_path / "a.jsonl", line(1))
    traces, _, _ = asyncio.run(JsonlSource(tmp_path / "a.jsonl").read(None))
    assert isinstance(traces[0], Trace) and traces[0].inputs["n"] == 1
