"""Tenants, their integrations and API tokens."""
