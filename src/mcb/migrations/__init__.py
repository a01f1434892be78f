"""Alembic environment and revisions. 0001 is the original single-tenant schema; later ones move forward."""
