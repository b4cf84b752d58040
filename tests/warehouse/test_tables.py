"""The table declarations (`evalkeeper.warehouse.tables`) against a freshly migrated
warehouse: every declared table exists as declared (columns in order, types, nullability,
primary key), every table of the file is declared, and the declared DDL builds the same."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from evalkeeper.warehouse import TABLES, WRITE_POLICY, Table, Warehouse, table_frame

# DESCRIBE spells some types in full
CANONICAL = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


def _declared(table: Table) -> list[tuple[str, str, str]]:
    return [
        (c.name, CANONICAL.get(c.type, c.type), "YES" if c.nullable else "NO")
        for c in table.columns
    ]


def _described(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, str, str]]:
    return [(r[0], r[1], r[2]) for r in con.execute(f"DESCRIBE {name}").fetchall()]


def _keys(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Per table, its PRIMARY KEY and UNIQUE constraints with their columns."""
    out: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for table, kind, columns in con.execute(
        "SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() "
        "WHERE database_name = current_database() AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
    ).fetchall():
        out.setdefault(table, []).append((kind, tuple(columns)))
    return out


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A fresh warehouse file, migrated by opening it, then read with DuckDB alone."""
    path = tmp_path_factory.mktemp("wh") / "w.duckdb"
    Warehouse(path).rows("SELECT 1")
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


@pytest.mark.parametrize("name", sorted(TABLES))
def test_a_declared_table_is_what_the_migrations_built(
    migrated: duckdb.DuckDBPyConnection, name: str
) -> None:
    table = TABLES[name]
    assert _described(migrated, name) == _declared(table)
    expected = [("PRIMARY KEY", table.key)] if table.key else []
    assert _keys(migrated).get(name, []) == expected


def test_every_table_of_a_migrated_file_is_declared(migrated: duckdb.DuckDBPyConnection) -> None:
    tables = {
        r[0]
        for r in migrated.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    assert tables == set(TABLES)


def test_only_scores_has_no_key_and_it_says_why() -> None:
    assert [t.name for t in TABLES.values() if not t.key] == ["scores"]
    assert "with_run" in TABLES["scores"].unkeyed
    assert WRITE_POLICY["scores"] == "with_run"


def test_the_declared_ddl_builds_the_same_tables(migrated: duckdb.DuckDBPyConnection) -> None:
    fresh = duckdb.connect(":memory:")
    for table in TABLES.values():
        fresh.execute(table.ddl())
        assert _described(fresh, table.name) == _described(migrated, table.name)
    assert _keys(fresh) == _keys(migrated)
    fresh.execute(TABLES["schema_version"].ddl(if_not_exists=True))  # no error when it exists


def test_every_written_table_has_a_policy_and_the_bookkeeping_none() -> None:
    written = {n for n, p in WRITE_POLICY.items() if p != "supersede"}
    assert written == set(TABLES) - {"schema_version", "schema_views"}
    assert {n for n, p in WRITE_POLICY.items() if p == "supersede"} == {
        "supersede_runs",
        "supersede_scores",
    }


@pytest.mark.parametrize("name", sorted(TABLES))
def test_a_frame_of_a_table_has_its_columns_and_dtypes(name: str) -> None:
    table = TABLES[name]
    empty = table_frame(name, [])
    assert empty.columns == list(table.column_names)
    assert dict(empty.schema) == table.polars_schema


def test_frame_types_rows_and_casts_microseconds(tmp_path: Path) -> None:
    when = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    row = {"experiment_id": "e", "example_id": "a", "repetition": 0, "attempts": 1}
    as_datetime = table_frame("runs", [{**row, "started_at": when}])
    as_micros = table_frame(
        "runs", [{**row, "started_at": int(when.timestamp() * 1_000_000)}], micros=True
    )
    assert as_datetime.equals(as_micros)
    assert as_micros.schema["started_at"] == pl.Datetime("us", "UTC")
    assert as_micros.schema["repetition"] == pl.Int32
    assert as_micros["outputs"].to_list() == [None]  # a column the rows lack is null
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.write({"runs": as_micros})
    assert wh.rows("SELECT example_id, started_at FROM runs") == [("a", when)]


def test_a_column_the_table_does_not_declare_is_refused() -> None:
    """A misspelt key would otherwise be dropped without a word."""
    with pytest.raises(ValueError, match="human_labels: no column 'lable' is declared"):
        table_frame("human_labels", [{"item_id": "i", "lable": "pass"}])
    with pytest.raises(ValueError, match="'extra'"):
        table_frame("judges", {"judge": ["j"], "extra": [1]})
    assert table_frame("judges", [{"judge": "j", "status": "healthy"}]).height == 1


def test_an_empty_file_is_not_migrated_and_says_so(tmp_path: Path) -> None:
    """A file another process has just created, with no table yet, reads as 'not migrated'.
    Selecting from a missing `schema_version` made DuckDB look the name up among Python
    variables and find this module's function of that name: an error, and exit 70 where a
    read-only reader met a warehouse file that was being created."""
    from evalkeeper.warehouse import store

    con = duckdb.connect(str(tmp_path / "new.duckdb"))
    try:
        assert store._migrated(con) is False
        assert store._up_to_date(con) is False
    finally:
        con.close()
