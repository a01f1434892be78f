"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""

from mcb.migrate import online

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    with online.steps():
        ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    with online.steps():
        ${downgrades if downgrades else "pass"}
