"""One module per provider: ``parse(payload, received_at=...) -> Normalized``. Quirks stay in here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from mcb.funnel.events import Normalized

Parser = Callable[..., Normalized]


@cache  # the worker parses every delivery: import the modules once
def parsers() -> dict[str, Parser]:
    from mcb.ingest.sources import manychat

    found: dict[str, Parser] = {"manychat": manychat.parse}
    for name in ("ghl", "stripe", "denefits", "perspective"):
        try:
            module = __import__(f"mcb.ingest.sources.{name}", fromlist=["parse"])
        except ModuleNotFoundError:
            continue
        found[name] = module.parse
    return found


def parse(source: str, payload: Any, *, received_at: datetime) -> Normalized:
    return parsers()[source](payload, received_at=received_at)
