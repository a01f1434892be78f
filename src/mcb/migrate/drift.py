"""Schema drift: differences between the live database and the metadata of the head revision."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from mcb.schema import metadata


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # Only tables: views and functions are not in the metadata; Alembic's own table is not ours.
    return not (type_ == "table" and name == "alembic_version")


def schema_drift(conn: Connection) -> list[str]:
    """One line per difference; empty when the database matches the metadata exactly."""
    context = MigrationContext.configure(
        conn,
        opts={"include_object": _include, "compare_type": True, "compare_server_default": False},
    )
    return [_describe(diff) for diff in compare_metadata(context, metadata)]


def _describe(diff: Any) -> str:
    if isinstance(diff, list):
        return "; ".join(_describe(d) for d in diff)
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        return f"{kind.replace('_', ' ')}: {diff[1].name}"
    if kind in ("add_column", "remove_column"):
        return f"{kind.replace('_', ' ')}: {diff[2]}.{diff[3].name}"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        obj = diff[1]
        table = getattr(getattr(obj, "table", None), "name", "?")
        return f"{kind.replace('_', ' ')}: {table}.{obj.name}"
    if kind in ("modify_type", "modify_nullable", "modify_default"):
        return f"{kind.replace('_', ' ')}: {diff[2]}.{diff[3]}"
    return str(diff)[:200]
