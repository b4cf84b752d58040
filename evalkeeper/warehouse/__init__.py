"""The DuckDB score warehouse: table declarations, migrations, frame writes, spool, views."""

from evalkeeper.warehouse.comparisons import comparison_frame, save_comparison
from evalkeeper.warehouse.schema import MIGRATIONS
from evalkeeper.warehouse.store import (
    Warehouse,
    WarehouseLocked,
    WarehouseUnusable,
    migrate,
    schema_version,
)
from evalkeeper.warehouse.tables import TABLES, WRITE_POLICY, Table, table_frame
from evalkeeper.warehouse.views import VIEWS

__all__ = [
    "MIGRATIONS",
    "TABLES",
    "VIEWS",
    "WRITE_POLICY",
    "Table",
    "Warehouse",
    "WarehouseLocked",
    "WarehouseUnusable",
    "comparison_frame",
    "migrate",
    "save_comparison",
    "schema_version",
    "table_frame",
]
