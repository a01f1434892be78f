"""The dashboard: server-rendered pages over the metric layer, behind a token login."""
