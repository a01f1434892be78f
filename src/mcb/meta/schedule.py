"""The daily Meta sync inside ``mcb serve --schedule``: one thread, one pass over the tenants a day.

At the configured UTC time (06:00 by default, the original's old cron slot) the thread syncs every active
tenant that has an active meta integration, one after the other, each recorded in ``sync_runs`` with
trigger ``schedule``. A tenant's failure (say, an expired token) is recorded and logged; the others still
run, and the thread waits for the next day. The cron alternative is ``mcb meta sync --all-tenants``.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

from sqlalchemy import Engine

from mcb.config import Settings
from mcb.errors import UserError
from mcb.meta.sync import ClientFactory, default_client, sync_all_tenants

log = logging.getLogger(__name__)


def parse_time_of_day(value: str) -> clock_time:
    try:
        hours, minutes = (int(p) for p in value.split(":"))
        return clock_time(hours, minutes, tzinfo=UTC)
    except ValueError:
        raise UserError(f"{value!r} is not a time of day; write HH:MM in UTC, for example 06:00.") from None


def next_run(now: datetime, at: clock_time) -> datetime:
    """The first moment at ``at`` (UTC) strictly after ``now``."""
    now = now.astimezone(UTC)
    candidate = datetime.combine(now.date(), at.replace(tzinfo=None), tzinfo=UTC)
    return candidate if candidate > now else candidate + timedelta(days=1)


class MetaSyncScheduler(threading.Thread):
    """Runs :func:`sync_all_tenants` daily at ``at``; ``stop()`` ends it between or after passes."""

    def __init__(self, admin_engine: Engine, app_engine: Engine, settings: Settings, *, at: clock_time,
                 client_factory: ClientFactory = default_client) -> None:
        super().__init__(name="meta-sync-scheduler", daemon=True)
        self.admin_engine, self.app_engine, self.settings = admin_engine, app_engine, settings
        self.at = at
        self.client_factory = client_factory
        self.passes = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.is_set():
            due = next_run(datetime.now(UTC), self.at)
            log.info("next scheduled Meta sync at %s", due.isoformat())
            if self._stop_event.wait((due - datetime.now(UTC)).total_seconds()):
                return
            self.run_once()

    def run_once(self) -> None:
        try:
            outcomes = sync_all_tenants(self.admin_engine, self.app_engine, self.settings, trigger="schedule",
                                        client_factory=self.client_factory)
        except Exception:  # the thread must survive a bad day (database down, ...) and try tomorrow
            log.exception("the scheduled Meta sync failed")
            return
        finally:
            self.passes += 1
        for outcome in outcomes:
            if outcome.summary is not None:
                s = outcome.summary
                log.info("scheduled Meta sync of %s: %d ads, %d insight rows, %d API calls in %.1f s",
                            outcome.tenant, s.ads, s.insight_rows, s.api_calls, s.seconds)
            else:
                log.warning("scheduled Meta sync of %s failed: %s", outcome.tenant, outcome.error)
