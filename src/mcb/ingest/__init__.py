"""Ingestion: the HTTP routes, the durable inbox, the worker, and one module per provider."""
