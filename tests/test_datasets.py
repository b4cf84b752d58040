from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkeeper.datasets import DatasetError, load_dataset
from evalkeeper.run.targets import TargetSpecError, load_target
from evalkeeper.suites import select
from tests.helpers import SAMPLE_CATEGORIES, write_dataset


def test_bundled_dataset_loads_with_its_config() -> None:
    ds = load_dataset("appointments", Path("data/datasets"))
    assert len(ds.examples) >= 80
    assert {e.metadata.category for e in ds.examples} >= SAMPLE_CATEGORIES
    assert sum(1 for e in ds.examples if e.metadata.incident_id and e.metadata.critical) >= 10
    assert [r.name for r in ds.config.evaluators][:2] == ["tool_call_correct", "contains"]


def test_bad_lines_are_all_reported_with_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = {"id": "a", "inputs": {"q": 1}, "reference_outputs": {}, "metadata": {}}
    lines = [
        json.dumps(good),
        '{"id": "b", "reference_outputs": {}}',  # no inputs
        "{not json",
        json.dumps({**good, "id": "a"}),  # duplicate id
        json.dumps({**good, "id": "c", "inputs": "text"}),  # wrong type
        json.dumps({**good, "id": "d", "category": "x"}),  # unknown top-level key
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(path, tmp_path)
    msg = str(info.value)
    assert f'{path}:2: missing field "inputs"' in msg
    assert f"{path}:3: not valid JSON" in msg
    assert f'{path}:4: duplicate id "a" (first on line 1)' in msg
    assert f'{path}:5: field "inputs"' in msg
    assert f'{path}:6: unknown field "category"' in msg


def test_a_raw_tab_in_a_string_says_where_and_how_to_escape_it(tmp_path: Path) -> None:
    path = tmp_path / "tabs.jsonl"
    line = '{"id": "a", "inputs": {"q": "one\ttwo"}, "reference_outputs": {}}'
    path.write_text(line + "\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(path, tmp_path)
    assert str(info.value).endswith(
        f"{path}:1: not valid JSON (invalid control character at column {line.index(chr(9)) + 1}; escape a line "
        "break or tab inside a string as \\n or \\t)"
    )
    replay = tmp_path / "outputs.jsonl"
    replay.write_text('{"id": "a", "outputs": {"reply": "x"}\n')
    with pytest.raises(TargetSpecError, match=r"outputs.jsonl:1: not valid JSON \(expecting "):
        load_target(f"replay:{replay}")


def test_unknown_dataset_names_the_known_ones(tmp_path: Path) -> None:
    write_dataset(tmp_path / "mine.jsonl", 3)
    with pytest.raises(DatasetError, match=r"known in .*: mine"):
        load_dataset("nope", tmp_path)


def test_version_is_a_content_hash(tmp_path: Path) -> None:
    p = write_dataset(tmp_path / "d.jsonl", 10)
    v1 = load_dataset(p, tmp_path).version
    assert load_dataset(p, tmp_path).version == v1
    lines = p.read_text().splitlines()
    lines[3] = lines[3].replace("answer 3", "answer three")
    p.write_text("\n".join(lines) + "\n")
    assert load_dataset(p, tmp_path).version != v1


def test_smoke_is_deterministic_stratified_and_keeps_critical(tmp_path: Path) -> None:
    ds = load_dataset(write_dataset(tmp_path / "d.jsonl", 203, critical_every=17), tmp_path)
    kw = {"share": 0.25, "min_per_category": 2, "seed": 7}
    smoke = select(ds.examples, "smoke", **kw)
    assert [e.id for e in smoke] == [e.id for e in select(ds.examples, "smoke", **kw)]
    ids = {e.id for e in smoke}
    assert all(e.id in ids for e in ds.examples if e.metadata.critical)
    for cat in {e.metadata.category for e in ds.examples}:
        members = [e for e in ds.examples if e.metadata.category == cat]
        chosen = [e for e in smoke if e.metadata.category == cat]
        assert len(chosen) >= max(2, -(-len(members) // 4))
        # no more than the share, beyond the critical ones it had to keep
        extra_critical = sum(1 for e in chosen if e.metadata.critical)
        assert len(chosen) <= -(-len(members) // 4) + extra_critical
    other_seed = select(ds.examples, "smoke", share=0.25, min_per_category=2, seed=8)
    assert {e.id for e in other_seed} != ids
    assert len(select(ds.examples, "full", **kw)) == 203


def test_smoke_floor_applies_to_small_categories(tmp_path: Path) -> None:
    ds = load_dataset(write_dataset(tmp_path / "d.jsonl", 8), tmp_path)  # 2 per category
    smoke = select(ds.examples, "smoke", share=0.25, min_per_category=2, seed=1)
    assert len(smoke) == 8


def test_content_hash_is_the_hash_of_the_whole_canonical_example() -> None:
    from evalkeeper.models import Example, content_hash

    examples = [
        Example(id="a", inputs={"q": "é ✓", "n": [1, 2.5]}, reference_outputs={}),
        Example.model_validate(
            {
                "id": 'b"q',
                "inputs": {"z": 1, "a": {"y": None}},
                "reference_outputs": {"reply": "x"},
                "metadata": {"category": "c", "critical": True, "zz_free": {"k": 1}},
            }
        ),
    ]
    for e in examples:
        assert e.content_hash == content_hash(e.model_dump(mode="json"))
