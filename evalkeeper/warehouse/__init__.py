"""The DuckDB score warehouse: schema, migrations, frame writes, spool, views."""

from evalkeeper.warehouse.comparisons import comparison_frame, save_comparison
from evalkeeper.warehouse.schema import MIGRATIONS, VIEWS, WRITE_POLICY
from evalkeeper.warehouse.store import (
    Warehouse,
    WarehouseLocked,
    WarehouseUnusable,
    migrate,
    schema_version,
)

__all__ = [
    "MIGRATIONS",
    "VIEWS",
    "WRITE_POLICY",
    "Warehouse",
    "WarehouseLocked",
    "WarehouseUnusable",
    "comparison_frame",
    "migrate",
    "save_comparison",
    "schema_version",
]
