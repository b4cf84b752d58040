"""Drawing items into annotation files, and importing labels all or nothing, on a real
warehouse with runs judged over HTTP by the scripted server."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkeeper.calibration import (
    LabelFileError,
    SampleError,
    import_labels,
    item_id,
    sample_items,
)
from evalkeeper.calibration.sampling import allocate
from evalkeeper.cli import app
from evalkeeper.settings import Settings
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
from evalkeeper.warehouse import Warehouse
from tests.calibration.scenario import judge_settings, judged_run, write_scenario

N = 120
runner = CliRunner()


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("sample")
    with ScriptedLLMServer(policy=Policy()) as server:
        s = judge_settings(root, server)
        _, replay = write_scenario(root, N)
        judged_run(s, replay, "exp-a", ["factual_match"])
        yield s


@pytest.fixture
def fresh(judged: Settings, tmp_path: Path) -> Settings:
    """A copy of the judged warehouse, so that draws and imports do not leak between tests."""
    import shutil

    Warehouse.from_settings(judged).ingest_spool()
    target = tmp_path / "w.duckdb"
    with Warehouse.from_settings(judged).connect(checkpoint=True):
        pass
    shutil.copy(judged.warehouse, target)
    return judged.model_copy(update={"warehouse": target})


def test_allocation_is_proportional_and_covers_every_stratum() -> None:
    alloc = allocate({"pass/a": 70, "pass/b": 20, "fail/a": 9, "fail/b": 1}, 20)
    assert sum(alloc.values()) == 20 and alloc["fail/b"] == 1
    assert alloc["pass/a"] > alloc["pass/b"] > alloc["fail/a"] >= 1
    assert allocate({"x": 3}, 10) == {"x": 3}


def test_sample_is_seeded_stratified_and_never_shows_the_verdict(fresh: Settings) -> None:
    wh = Warehouse.from_settings(fresh)
    res = sample_items(wh, fresh, "factual_match", n=40, out_dir=fresh.warehouse.parent / "a")
    assert res.n_items == 40 and res.n_double == 8  # 20% for two annotators
    csv_path, jsonl_path = (Path(f) for f in res.files)
    rows = list(csv.DictReader(csv_path.open()))
    lines = [json.loads(x) for x in jsonl_path.read_text().splitlines()]
    assert len(rows) == len(lines) == 48
    assert [r["item_id"] for r in rows] == [x["item_id"] for x in lines]
    assert "verdict" not in rows[0] and "judge_verdict" not in rows[0]
    assert all("passed" not in json.dumps(x) for x in lines)
    copies = Counter(r["item_id"] for r in rows)
    assert sorted(Counter(copies.values()).items()) == [(1, 32), (2, 8)]
    first = lines[0]
    assert first["item_id"] == item_id(first["experiment_id"], first["example_id"], 0)
    assert first["inputs"]["question"].startswith("question")
    assert first["outputs"]["reply"].startswith("answer")
    assert first["reference_outputs"]["reply"].startswith("answer")
    # stratified by verdict and category: every stratum is in, shares follow the judge's
    stored = wh.rows("SELECT judge_verdict, category, count(*) FROM calibration_items GROUP BY ALL")
    assert len(stored) == 6 and sum(n for *_, n in stored) == 40
    fails = sum(n for v, _, n in stored if v == "fail")
    assert 5 <= fails <= 16  # about a quarter of 40


def test_the_same_seed_draws_the_same_items(judged: Settings, tmp_path: Path) -> None:
    picks = []
    for name in ("one", "two"):
        s = judged.model_copy(update={"warehouse": tmp_path / name / "w.duckdb"})
        s.warehouse.parent.mkdir()
        import shutil

        with Warehouse.from_settings(judged).connect(checkpoint=True):
            pass
        shutil.copy(judged.warehouse, s.warehouse)
        res = sample_items(
            Warehouse.from_settings(s), s, "factual_match", n=25, out_dir=tmp_path / name
        )
        with Path(res.files[0]).open() as fh:
            picks.append([r["item_id"] for r in csv.DictReader(fh)])
    assert picks[0] == picks[1]


def test_sizing_without_n_and_nothing_drawn_twice(fresh: Settings) -> None:
    wh = Warehouse.from_settings(fresh)
    res = sample_items(wh, fresh, "factual_match", out_dir=fresh.warehouse.parent / "b")
    assert res.n_items == N and "196 labels" in res.sized_by and f"only {N}" in res.sized_by
    with pytest.raises(SampleError, match="every judged run was drawn before"):
        sample_items(wh, fresh, "factual_match", n=5, out_dir=fresh.warehouse.parent / "c")
    with pytest.raises(SampleError, match="no judged runs"):
        sample_items(wh, fresh, "tone_appropriate", n=5)


def test_cli_sample_then_import_the_filled_in_file(fresh: Settings) -> None:
    wh_args = ["--warehouse", str(fresh.warehouse)]
    out_dir = fresh.warehouse.parent / "ann"
    out = runner.invoke(
        app,
        ["calibrate", "sample", "--judge", "factual_match", "--n", "30", "--out", str(out_dir),
         *wh_args],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "drew 30 items" in out.output
    jsonl = next(out_dir.glob("*.jsonl"))
    filled = []
    for line in jsonl.read_text().splitlines():
        row = json.loads(line)
        row["annotator"] = "alice" if row["copy"] == 1 else "bob"
        row["label"] = "pass"
        filled.append(json.dumps(row))
    # one row left for later: not labelled yet, skipped and counted
    last = json.loads(filled[-1])
    last["annotator"], last["label"] = "", ""
    filled[-1] = json.dumps(last)
    jsonl.write_text("\n".join(filled) + "\n")
    out = runner.invoke(app, ["calibrate", "import", str(jsonl), *wh_args])
    assert out.exit_code == 0, out.output
    assert "new" in out.output and "1 rows not labelled yet" in out.output
    n = Warehouse.from_settings(fresh).rows("SELECT count(*) FROM human_labels")[0][0]
    assert n == len(filled) - 1


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _row(i: int, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "experiment_id": "exp-a",
        "example_id": f"ex-{i:04d}",
        "repetition": 0,
        "judge": "factual_match",
        "annotator": "alice",
        "label": "pass",
        "time": "2026-11-02T10:00:00Z",
        "note": "",
    }
    base.update(kw)
    return base


def test_a_bad_file_is_reported_line_by_line_and_nothing_is_imported(
    fresh: Settings, tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "bad.csv",
        [
            _row(0),
            _row(1, label="maybe"),
            _row(2, time="yesterday"),
            _row(3, judge="nobody"),
            _row(4, example_id="ex-9999"),
            _row(5, annotator=""),
            _row(6, time="2026-11-02T10:00:00"),
        ],
    )
    with pytest.raises(LabelFileError) as info:
        import_labels(Warehouse.from_settings(fresh), path)
    text = str(info.value)
    assert f"{path}:3: label 'maybe' is not one of factual_match's labels" in text
    assert f"{path}:4: field \"time\": 'yesterday' is not ISO 8601; write e.g." in text
    assert f"{path}:5: judge 'nobody' has no judged runs" in text
    assert f"{path}:6: judge 'factual_match' did not score experiment 'exp-a' example" in text
    assert f"{path}:7: missing field 'annotator'" in text
    assert f'{path}:8: field "time"' in text and "no timezone" in text
    assert "nothing imported" in text
    assert Warehouse.from_settings(fresh).rows("SELECT count(*) FROM human_labels") == [(0,)]
    out = runner.invoke(
        app, ["calibrate", "import", str(path), "--warehouse", str(fresh.warehouse)]
    )
    assert out.exit_code == 2 and "nothing imported" in out.output


def test_the_latest_label_of_an_annotator_wins_and_is_said(fresh: Settings, tmp_path: Path) -> None:
    wh = Warehouse.from_settings(fresh)
    first = _write(tmp_path / "a.csv", [_row(0, label="pass"), _row(1, label="pass")])
    assert import_labels(wh, first).inserted == 2
    again = import_labels(wh, first)
    assert again.unchanged == 2 and again.inserted == again.replaced == 0
    second = _write(
        tmp_path / "b.csv",
        [
            _row(0, label="fail", time="2026-11-03T10:00:00Z"),  # later: replaces
            _row(1, label="fail", time="2026-11-01T10:00:00Z"),  # earlier: the stored stays
            _row(2, label="fail", time="2026-11-01T10:00:00Z"),
            _row(2, label="pass", time="2026-11-04T10:00:00Z"),  # twice in the file
        ],
    )
    res = import_labels(wh, second)
    assert (res.inserted, res.replaced, res.kept_stored) == (1, 1, 1)
    notes = "\n".join(res.notes)
    assert "'pass' replaced by 'fail', the latest" in notes
    assert "kept the stored, later label" in notes
    assert "twice in this file" in notes
    labels = dict(wh.rows("SELECT example_id, label FROM human_labels ORDER BY 1"))
    assert labels == {"ex-0000": "fail", "ex-0001": "pass", "ex-0002": "pass"}


def test_item_ids_resolve_only_for_drawn_items(fresh: Settings, tmp_path: Path) -> None:
    wh = Warehouse.from_settings(fresh)
    iid = item_id("exp-a", "ex-0000", 0)
    path = _write(
        tmp_path / "ids.csv",
        [{"item_id": iid, "judge": "factual_match", "annotator": "a", "label": "pass"}],
    )
    with pytest.raises(LabelFileError, match="was not drawn for judge"):
        import_labels(wh, path)
    sample_items(wh, fresh, "factual_match", n=N, out_dir=tmp_path / "all")
    assert import_labels(wh, path).inserted == 1
    assert wh.rows("SELECT experiment_id, example_id FROM human_labels") == [("exp-a", "ex-0000")]
