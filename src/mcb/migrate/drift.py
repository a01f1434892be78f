"""Schema drift: differences between the live database and the metadata of the head revision.

Two passes, so that everything ``mcb.schema`` states is checked:

1. Alembic's autogenerate compares tables, columns (type, nullability, server default), unique
   constraints, foreign keys (with their ON DELETE) and indexes (by their columns).
2. What autogenerate does not look at is compared by Postgres itself: CHECK constraints, primary keys, a
   constraint left NOT VALID, and an index's method, predicate and INCLUDE columns. The metadata is built
   as temporary tables inside a savepoint that is rolled back, and the catalog's own rendering
   (``pg_get_constraintdef``, ``pg_get_indexdef``) of each object is compared with the live one by name.

Each line says which side has what: "missing" is in the metadata but not in the database, "unexpected"
is in the database but not in the metadata.
"""

from __future__ import annotations

import re
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Connection, MetaData, text
from sqlalchemy.exc import DBAPIError

from mcb.schema import DEFAULTS_TO_DEFAULT_TENANT, metadata

SCHEMA = "public"


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # Only tables: views and functions are not in the metadata; Alembic's own table is not ours.
    return not (type_ == "table" and name == "alembic_version")


def schema_drift(conn: Connection) -> list[str]:
    """One line per difference; empty when the database matches the metadata exactly.

    Changes nothing: the probe of the second pass is rolled back.
    """
    context = MigrationContext.configure(
        conn,
        opts={
            "include_object": _include,
            "compare_type": True,
            "compare_server_default": _default_comparator(_default_tenant_id(conn)),
        },
    )
    diffs = list(compare_metadata(context, metadata))
    lines = [_describe(diff) for diff in diffs]
    reported = {name for diff in diffs for name in _names(diff)}
    lines += [line for name, line in _catalog_drift(conn) if name not in reported]
    return lines


# --------------------------------------------------------------------------------------------- pass 1


def _default_tenant_id(conn: Connection) -> str | None:
    if conn.execute(text("SELECT to_regprocedure('mcb_default_tenant_id()')")).scalar() is None:
        return None
    value = conn.execute(text("SELECT mcb_default_tenant_id()")).scalar()
    return str(value) if value is not None else None


def _default_comparator(default_tenant: str | None) -> Any:
    def compare(
        context: MigrationContext,
        inspected_column: Column[Any],
        metadata_column: Column[Any],
        inspected_default: str | None,
        metadata_default: Any,
        rendered_metadata_default: str | None,
    ) -> bool | None:
        # tenant_id on the original's tables defaults to a literal that depends on the install (the
        # default tenant's id, see mcb.schema), so the metadata cannot state it: compare it with the
        # database's own default tenant instead. Every other default: Alembic's comparison (None).
        if metadata_column.info.get(DEFAULTS_TO_DEFAULT_TENANT):
            return default_tenant is None or inspected_default != f"'{default_tenant}'::uuid"
        return None

    return compare


def _names(diff: Any) -> list[str]:
    """``table.object`` names a diff of pass 1 concerns (so pass 2 does not report them twice)."""
    if isinstance(diff, list):
        return [name for d in diff for name in _names(d)]
    obj = diff[1] if len(diff) > 1 else None
    owner = getattr(obj, "table", None)  # the table of an index or constraint (Table has no truth value)
    table = getattr(owner, "name", None) if owner is not None else None
    name = getattr(obj, "name", None)
    return [f"{table}.{name}"] if table and name else []


_NOUNS = {
    "table": "table",
    "column": "column",
    "index": "index",
    "constraint": "unique constraint",
    "fk": "foreign key",
}


def _describe(diff: Any) -> str:
    if isinstance(diff, list):
        return "; ".join(_describe(d) for d in diff)
    kind = diff[0]
    action, _, what = kind.partition("_")
    if action in ("add", "remove") and what in _NOUNS:
        # Alembic's diff says what to do to the database: "add" what only the metadata has.
        side = "missing" if action == "add" else "unexpected"
        if what == "table":
            name = diff[1].name
        elif what == "column":
            name = f"{diff[2]}.{diff[3].name}"
        else:
            names = _names(diff)
            name = names[0] if names else str(diff[1].name)
        return f"{side} {_NOUNS[what]}: {name}"
    if action == "modify" and what in ("type", "nullable", "default", "comment"):
        return f"column {diff[2]}.{diff[3]}: {what} differs (database {_show(diff[5])}, metadata {_show(diff[6])})"
    if what == "table_comment":
        return f"table {diff[1].name}: comment differs"
    return str(diff)[:200]


def _show(value: Any) -> str:
    arg = getattr(value, "arg", value)  # a server default's clause
    return str(getattr(arg, "text", arg))


# --------------------------------------------------------------------------------------------- pass 2

_CONSTRAINTS = """
SELECT t.relname, con.conname, con.contype::text, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid
WHERE t.relnamespace = CAST(:namespace AS oid)
"""

# Indexes that do not back a constraint (those are compared as constraints).
_INDEXES = """
SELECT t.relname, i.relname, pg_get_indexdef(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relnamespace = CAST(:namespace AS oid)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = x.indexrelid
                  AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u', 'x'))
"""

# pg_get_indexdef qualifies the table when it is not first in the search path; compare without it.
_INDEX_TABLE = re.compile(r"^(CREATE (?:UNIQUE )?INDEX \S+ ON (?:ONLY )?)\S+\.")

_KINDS = {
    "c": "check constraint",
    "p": "primary key",
    "u": "unique constraint",
    "f": "foreign key",
    "i": "index",
}


def _catalog(conn: Connection, namespace: int, tables: set[str]) -> dict[str, tuple[str, str, str]]:
    """``table.name`` -> (table, kind, definition) of every constraint and index of ``tables``."""
    found: dict[str, tuple[str, str, str]] = {}
    for table, name, kind, definition in conn.execute(text(_CONSTRAINTS), {"namespace": namespace}):
        if table in tables:
            found[f"{table}.{name}"] = (table, kind, definition)
    for table, name, definition in conn.execute(text(_INDEXES), {"namespace": namespace}):
        if table in tables:
            found[f"{table}.{name}"] = (table, "i", _INDEX_TABLE.sub(r"\1", definition))
    return found


def _catalog_drift(conn: Connection) -> list[tuple[str, str]]:
    """(``table.name``, line) for each constraint or index whose catalog definition differs."""
    tables = set(metadata.tables)
    public = conn.execute(text("SELECT CAST(CAST(:s AS regnamespace) AS oid)"), {"s": SCHEMA}).scalar_one()
    live = _catalog(conn, public, tables)
    present = {
        r[0]
        for r in conn.execute(
            text("SELECT relname FROM pg_class WHERE relnamespace = :n AND relkind = 'r'"), {"n": public}
        )
    }
    # The metadata as temporary tables of the same names (pg_temp), gone again at the rollback.
    probe = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(probe, schema="pg_temp")
    savepoint = conn.begin_nested()
    try:
        probe.create_all(conn, checkfirst=False)
        temp = conn.execute(text("SELECT CAST(pg_my_temp_schema() AS oid)")).scalar_one()
        wanted = _catalog(conn, temp, tables)
    except DBAPIError as exc:
        # E.g. a default calls a function the database lacks: that is drift too, and says which.
        first = str(exc.orig or exc).strip().splitlines()[0]
        return [("", f"the metadata cannot be built in this database for comparison: {first}")]
    finally:
        savepoint.rollback()

    lines: list[tuple[str, str]] = []
    for name in sorted(live.keys() | wanted.keys()):
        have, want = live.get(name), wanted.get(name)
        if have and want:
            if have[2] != want[2]:
                lines.append(
                    (name, f"{_KINDS[want[1]]} {name} differs (database {have[2]}; metadata {want[2]})")
                )
        # Only checks and primary keys: pass 1 reports the presence of the others (and of whole tables).
        elif want and want[1] in ("c", "p") and want[0] in present:
            lines.append((name, f"missing {_KINDS[want[1]]}: {name} ({want[2]})"))
        elif have and have[1] in ("c", "p"):
            lines.append((name, f"unexpected {_KINDS[have[1]]}: {name} ({have[2]})"))
    return lines
