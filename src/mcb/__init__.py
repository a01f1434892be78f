"""MCB: multi-tenant funnel tracking on PostgreSQL."""

__version__ = "0.1.0"
