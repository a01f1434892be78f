"""Report windows: a span of local calendar dates in the tenant's time zone (spec R-35, Decision 5).

A window is ``start`` to ``end`` inclusive, both local dates. Its UTC bounds are ``[start 00:00 local,
end + 1 day 00:00 local)``, so a week that crosses a daylight-saving change is 167 or 169 hours long and
an event at local midnight belongs to the day that begins then. Weeks run Monday to Sunday.

Every query in ``mcb.analytics.metrics`` compares timestamps with ``start_utc``/``end_utc`` and dates
(daily ad insights) with ``start``/``end``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcb.errors import UserError

_WEEK_RE = re.compile(r"^(\d{4})-W(\d{1,2})$")
_LAST_RE = re.compile(r"^(\d+)\s*(d|w)$")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"{name!r} is not an IANA time zone (for example America/New_York).") from None


@dataclass(frozen=True)
class Window:
    """Local dates ``start`` … ``end`` (inclusive) in the IANA zone ``timezone``."""

    start: date
    end: date
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise UserError(f"The window ends ({self.end}) before it starts ({self.start}).")
        zone(self.timezone)

    # ------------------------------------------------------------------ bounds
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.tz)

    @property
    def start_utc(self) -> datetime:
        """The first instant of the window (local midnight of ``start``), in UTC."""
        return self.local_midnight(self.start).astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        """The first instant after the window (local midnight after ``end``), in UTC; exclusive."""
        return self.local_midnight(self.end + timedelta(days=1)).astimezone(UTC)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, moment: datetime) -> bool:
        return self.start_utc <= moment < self.end_utc

    def local_date(self, moment: datetime) -> date:
        """The local calendar date of an instant in this window's zone."""
        return moment.astimezone(self.tz).date()

    # ------------------------------------------------------------------ derived windows
    def shifted(self, days: int) -> Window:
        return Window(self.start + timedelta(days=days), self.end + timedelta(days=days), self.timezone)

    def previous(self) -> Window:
        """The window of the same length just before this one (for week-over-week changes)."""
        return self.shifted(-self.days)

    def weeks(self) -> list[Window]:
        """Consecutive 7-day windows from ``start`` (the last one shorter if the length is not a multiple)."""
        out: list[Window] = []
        day = self.start
        while day <= self.end:
            last = min(day + timedelta(days=6), self.end)
            out.append(Window(day, last, self.timezone))
            day = last + timedelta(days=1)
        return out

    def dates(self) -> Iterator[date]:
        for i in range(self.days):
            yield self.start + timedelta(days=i)

    @property
    def iso_week(self) -> str | None:
        """``YYYY-Www`` when the window is exactly one Monday–Sunday week, else None."""
        year, week, weekday = self.start.isocalendar()
        if weekday == 1 and self.days == 7:
            return f"{year}-W{week:02d}"
        return None

    @property
    def label(self) -> str:
        """A human label: "Mon Nov 17 – Sun Nov 23, 2025" (no "..." anywhere: Gmail collapses it)."""
        if self.start == self.end:
            return self.start.strftime("%a %b %-d, %Y")
        first = self.start.strftime("%a %b %-d") + (self.start.strftime(", %Y") if self.start.year != self.end.year else "")
        return f"{first} – {self.end.strftime('%a %b %-d, %Y')}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "timezone": self.timezone,
            "days": self.days,
            "start_utc": self.start_utc.isoformat(),
            "end_utc": self.end_utc.isoformat(),
            "iso_week": self.iso_week,
            "label": self.label,
        }


# ---------------------------------------------------------------------------- constructors


def today_in(timezone: str, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(zone(timezone)).date()


def iso_week(value: str, timezone: str) -> Window:
    """``2025-W47`` → Monday … Sunday of that ISO week."""
    match = _WEEK_RE.match(value.strip())
    if not match:
        raise UserError(f"{value!r} is not an ISO week; write it as YYYY-Www, for example 2025-W47.")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise UserError(f"{value!r} is not a week of that year.") from None
    return Window(monday, monday + timedelta(days=6), timezone)


def last_days(days: int, timezone: str, *, today: date | None = None) -> Window:
    """The ``days`` local days ending today (today included)."""
    if days < 1:
        raise UserError("--last needs at least one day.")
    end = today or today_in(timezone)
    return Window(end - timedelta(days=days - 1), end, timezone)


def last_complete_week(timezone: str, *, today: date | None = None) -> Window:
    """The most recent Monday–Sunday week that has ended (in the tenant's zone)."""
    day = today or today_in(timezone)
    this_monday = day - timedelta(days=day.weekday())
    return Window(this_monday - timedelta(days=7), this_monday - timedelta(days=1), timezone)


def last_complete_weeks(count: int, timezone: str, *, today: date | None = None) -> Window:
    """The ``count`` most recent complete Monday–Sunday weeks, as one window."""
    last = last_complete_week(timezone, today=today)
    return Window(last.start - timedelta(days=7 * (count - 1)), last.end, timezone)


def parse_last(value: str) -> int:
    """``30d`` → 30, ``4w`` → 28, ``7`` → 7."""
    text = value.strip().lower()
    if text.isdigit():
        return int(text)
    match = _LAST_RE.match(text)
    if not match:
        raise UserError(f"{value!r} is not a length; write it as a number of days or weeks, e.g. 30d or 4w.")
    n = int(match.group(1))
    return n * 7 if match.group(2) == "w" else n


def parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"{option} {value!r} is not a date; write it as YYYY-MM-DD.") from None


def resolve(
    timezone: str,
    *,
    from_date: str | None = None,
    to_date: str | None = None,
    week: str | None = None,
    last: str | None = None,
    default: Window | None = None,
    today: date | None = None,
) -> Window:
    """The window a command asked for: ``--from/--to``, ``--week`` or ``--last``; else ``default``
    (else the last 30 days). Combining two of them is an error."""
    given = [name for name, v in (("--from/--to", from_date or to_date), ("--week", week), ("--last", last)) if v]
    if len(given) > 1:
        raise UserError(f"Give one window, not {' and '.join(given)}.")
    if week:
        return iso_week(week, timezone)
    if last:
        return last_days(parse_last(last), timezone, today=today)
    if from_date or to_date:
        end = parse_date(to_date, "--to") if to_date else (today or today_in(timezone))
        start = parse_date(from_date, "--from") if from_date else end
        return Window(start, end, timezone)
    return default or last_days(30, timezone, today=today)
