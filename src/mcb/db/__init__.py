"""Database access: URLs, engines, the embedded server."""

from mcb.db.engine import connect_engine, database_url, make_engine, redact_url

__all__ = ["connect_engine", "database_url", "make_engine", "redact_url"]
