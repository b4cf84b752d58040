"""The DuckDB score warehouse: schema, migrations, frame writes, spool, views."""

from evalkeeper.warehouse.schema import MIGRATIONS, VIEWS, WRITE_POLICY
from evalkeeper.warehouse.store import Warehouse, WarehouseLocked, migrate, schema_version

__all__ = [
    "MIGRATIONS",
    "VIEWS",
    "WRITE_POLICY",
    "Warehouse",
    "WarehouseLocked",
    "migrate",
    "schema_version",
]
