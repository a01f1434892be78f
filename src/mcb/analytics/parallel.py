"""Two halves of a report at once: work handed to a second connection of the same snapshot.

``mcb.analytics.run.report_sessions`` opens the tenant's RLS session twice on one snapshot; a builder that
receives the second connection (``side``) computes an independent part of its report on it in a thread
while its own connection computes the rest. Both wait on PostgreSQL most of the time (psycopg releases the
GIL meanwhile), so on two CPUs the report takes about as long as its longer half.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection

T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="report-side")


@contextmanager
def beside(conn: Connection, side: Connection | None, fn: Callable[..., T], *args: Any,
           **kw: Any) -> Iterator[Callable[[], T]]:
    """Start ``fn(side, *args, **kw)`` in a thread when there is a ``side`` connection; yields a function
    that returns its result. Without one, that function computes ``fn(conn, *args, **kw)`` when called.
    The block never ends while the side connection is still busy, even when it raises."""
    future = _POOL.submit(fn, side, *args, **kw) if side is not None else None
    try:
        if future is not None:
            yield future.result
        else:
            yield lambda: fn(conn, *args, **kw)
    finally:
        if future is not None:
            wait([future])
