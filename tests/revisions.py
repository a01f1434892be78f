"""The revisions the tests expect, written out by hand: adding a revision means adding it here."""

from mcb.db.engine import make_engine
from mcb.migrate import ledger, runner

FORWARD = ["0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011", "0012", "0013", "0014", "0015", "0016", "0017", "0018"]
HEAD = FORWARD[-1]


def upgrade_to(url: str, target: str) -> None:
    """Alembic alone, from a legacy database up to ``target`` (the runner always goes to head)."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ledger.ensure_ledger(conn)
            command.stamp(runner.alembic_config(conn), runner.BASE_REVISION)
            conn.commit()
            command.upgrade(runner.alembic_config(conn), target)
            conn.commit()
    finally:
        engine.dispose()
