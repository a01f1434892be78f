"""A Graph API client for the Ads sync: paging, a request budget, retries, asynchronous report jobs.

The original called the Graph API with ``limit=500`` and never looked further, never backed off and
never noticed a dead token (R-38). This client:

- follows ``paging.next`` until the edge is exhausted (:meth:`GraphClient.pages`);
- reads Meta's usage headers after every answer (``x-business-use-case-usage``, ``x-ad-account-usage``,
  ``x-fb-ads-insights-throttle``, ``x-app-usage``) and pauses *before* the next call once the busiest
  one passes a threshold, so Meta does not have to throttle us (:class:`UsageBudget`);
- retries transport errors, HTTP 5xx and Meta's throttling and transient error codes with exponential
  backoff and full jitter (tenacity), and never retries what cannot succeed;
- turns code 190 (and its relatives) into :class:`TokenRejected`, which the sync reports in one sentence;
- runs large insight ranges as asynchronous report jobs (``POST act_X/insights`` → poll → read pages).

It knows nothing about tenants or the database: the sync passes it a token and counts its calls.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
Params = dict[str, Any]

# Meta's rate-limit codes: app (4), user (17), API-level (32, 613), business use case (80000-80014).
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
# Meta says "retry later" for these (unknown error, service temporarily unavailable).
TRANSIENT_CODES = frozenset({1, 2})
# The access token is expired, revoked, or its user changed password / logged out.
TOKEN_CODES = frozenset({190, 102})
USAGE_HEADERS = ("x-business-use-case-usage", "x-ad-account-usage", "x-fb-ads-insights-throttle", "x-app-usage")


class GraphError(Exception):
    """Meta answered with an error that retrying will not fix (bad field, missing permission, ...)."""

    def __init__(self, message: str, *, status: int = 0, code: int | None = None, subcode: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.subcode = subcode


class TokenRejected(GraphError):
    """The access token is expired or revoked (code 190): nothing will work until a new one is stored."""


class TransientGraphError(GraphError):
    """A failure worth retrying: the network, a 5xx, Meta's throttling or transient codes."""

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLE_CODES


@dataclass
class RetryPolicy:
    """How often and how patiently a failing request is retried (full jitter: a random wait in
    [0, min(max_wait, initial * 2**attempt)]); throttling waits at least ``throttle_wait``."""

    attempts: int = 6
    initial: float = 1.0
    max_wait: float = 60.0
    throttle_wait: float = 30.0


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


@dataclass
class UsageBudget:
    """How close Meta says we are to its limits, and how long to pause before the next call.

    Every usage header states percentages of a limit (0-100). Below ``threshold`` nothing happens;
    above it the client pauses ``seconds_per_point`` for each point over, growing to ``max_pause`` at
    100 %, or for as long as Meta's ``estimated_time_to_regain_access`` / ``reset_time_duration`` say
    when those are set (Meta has already blocked us then).
    """

    threshold: float = 75.0
    seconds_per_point: float = 2.0
    max_pause: float = 300.0
    usage_pct: float = 0.0
    regain_seconds: float = 0.0
    pauses: list[float] = field(default_factory=list)

    def observe(self, headers: httpx.Headers) -> None:
        pct = 0.0
        regain = 0.0
        for name in USAGE_HEADERS:
            raw = headers.get(name)
            if not raw:
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                log.warning("Meta sent an unreadable %s header; ignored", name)
                continue
            p, r = _usage_of(value)
            pct, regain = max(pct, p), max(regain, r)
        self.usage_pct, self.regain_seconds = pct, regain

    def pause_needed(self) -> float:
        if self.regain_seconds > 0:
            return min(self.max_pause, self.regain_seconds)
        if self.usage_pct < self.threshold:
            return 0.0
        return min(self.max_pause, max(self.seconds_per_point, (self.usage_pct - self.threshold) * self.seconds_per_point))


def _usage_of(value: Any) -> tuple[float, float]:
    """(highest percentage, seconds until access returns) in one header's JSON, whatever its shape:
    an object of percentages, or (business use case) ``{business_id: [{type, call_count, ...}]}``."""
    pct, regain = 0.0, 0.0
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, list | dict):
                p, r = _usage_of(item)
                pct, regain = max(pct, p), max(regain, r)
            elif key == "estimated_time_to_regain_access":
                regain = max(regain, _number(item) * 60)  # minutes
            elif key == "reset_time_duration":
                regain = max(regain, _number(item))  # seconds
            elif key in ("call_count", "total_cputime", "total_time", "acc_id_util_pct", "app_id_util_pct"):
                pct = max(pct, _number(item))
    elif isinstance(value, list):
        for item in value:
            p, r = _usage_of(item)
            pct, regain = max(pct, p), max(regain, r)
    return pct, regain


def _error_of(response: httpx.Response) -> GraphError:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    status = response.status_code
    if not isinstance(error, dict):
        if status >= 500 or status == 429:
            return TransientGraphError(f"Meta answered HTTP {status}", status=status)
        return GraphError(f"Meta answered HTTP {status} without an error object", status=status)
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    text = str(error.get("message") or "no message")[:300]
    described = f"Meta error {code}{f'/{subcode}' if subcode else ''} (HTTP {status}): {text}"
    if code in TOKEN_CODES:
        return TokenRejected(described, status=status, code=code, subcode=subcode)
    if code in THROTTLE_CODES or code in TRANSIENT_CODES or error.get("is_transient") is True or status >= 500:
        return TransientGraphError(described, status=status, code=code, subcode=subcode)
    return GraphError(described, status=status, code=code, subcode=subcode)


class GraphClient:
    """One account's access to the Graph API with one access token. Not thread-safe; one per sync."""

    def __init__(
        self,
        *,
        base_url: str,
        version: str,
        access_token: str,
        budget: UsageBudget | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        sleep: Sleep = time.sleep,
        poll_interval: float = 5.0,
        job_timeout: float = 3600.0,
    ) -> None:
        self.root = f"{base_url.rstrip('/')}/{version}/"
        self.budget = budget or UsageBudget()
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.calls = 0
        self.retries = 0
        self.http_seconds = 0.0  # time spent waiting for Meta's answers (not pauses, not our own work)
        # The token travels in the Authorization header, never in a URL we could log.
        self._http = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {access_token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ requests

    def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        return self._request("GET", path, params)

    def post(self, path: str, params: Params | None = None) -> dict[str, Any]:
        return self._request("POST", path, params)

    def _request(self, method: str, path: str, params: Params | None) -> dict[str, Any]:
        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(TransientGraphError),
            sleep=self.sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        result: dict[str, Any] = retrying(self._once, method, path, params)
        return result

    def _wait(self, state: RetryCallState) -> float:
        wait = wait_random_exponential(multiplier=self.retry.initial, max=self.retry.max_wait)(state)
        outcome = state.outcome.exception() if state.outcome else None
        if isinstance(outcome, TransientGraphError) and outcome.throttled:
            wait = max(wait, self.retry.throttle_wait, self.budget.pause_needed())
        return float(wait)

    def _log_retry(self, state: RetryCallState) -> None:
        self.retries += 1
        error = state.outcome.exception() if state.outcome else None
        log.warning("Graph API call failed (%s); retry %d in %.1f s", error, state.attempt_number,
                    state.next_action.sleep if state.next_action else 0.0)

    def _once(self, method: str, path: str, params: Params | None) -> dict[str, Any]:
        pause = self.budget.pause_needed()
        if pause > 0:
            log.info("Meta usage at %.0f%%: pausing %.1f s before the next call", self.budget.usage_pct, pause)
            self.budget.pauses.append(pause)
            self.sleep(pause)
        url = path if path.startswith(("http://", "https://")) else self.root + path.lstrip("/")
        encoded = {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in (params or {}).items()}
        self.calls += 1
        clock = time.monotonic()
        try:
            # No params at all (not an empty dict) for a paging.next URL: httpx would replace its query.
            response = self._http.request(method, url, params=encoded if method == "GET" and encoded else None,
                                          data=encoded if method == "POST" else None)
        except httpx.TransportError as exc:
            raise TransientGraphError(f"Meta could not be reached ({type(exc).__name__})") from None
        finally:
            self.http_seconds += time.monotonic() - clock
        self.budget.observe(response.headers)
        if response.status_code != 200:
            raise _error_of(response)
        try:
            body = response.json()
        except ValueError:
            raise TransientGraphError("Meta answered HTTP 200 with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise GraphError("Meta answered with JSON that is not an object")
        if "error" in body:
            raise _error_of(response)
        return body

    # ------------------------------------------------------------------------------------- reading

    def pages(self, path: str, params: Params | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every page of an edge, following ``paging.next`` (which carries the cursor) to the end."""
        body = self.get(path, params)
        followed: set[str] = set()
        while True:
            data = body.get("data")
            if not isinstance(data, list):
                raise GraphError(f"Meta answered {path.split('?')[0]} without a data list")
            yield [row for row in data if isinstance(row, dict)]
            paging = body.get("paging")
            next_url = paging.get("next") if isinstance(paging, dict) else None
            if not next_url or not data:
                return
            if next_url in followed:  # a cursor that does not move would page forever
                raise GraphError(f"Meta's paging of {path.split('?')[0]} repeated a page")
            followed.add(str(next_url))
            body = self.get(str(next_url))

    def report_pages(self, account: str, params: Params) -> Iterator[list[dict[str, Any]]]:
        """Insights through an asynchronous report job: start it, wait until Meta says it is done,
        then read its result pages. A failed or skipped job is an error naming its id."""
        run_id = ""
        for attempt in range(1, 4):
            try:
                run_id = self._finished_report(account, params)
                break
            except TransientGraphError as exc:
                if attempt == 3:
                    raise
                log.warning("%s; starting the job again", exc)
        yield from self.pages(f"{run_id}/insights", {"limit": params.get("limit", 500)})

    def _finished_report(self, account: str, params: Params) -> str:
        started = self.post(f"{account}/insights", params)
        run_id = started.get("report_run_id")
        if not run_id:
            raise GraphError("Meta started no report job (no report_run_id in its answer)")
        waited = 0.0
        while True:
            job = self.get(str(run_id), {"fields": "async_status,async_percent_completion"})
            status = str(job.get("async_status") or "")
            if status == "Job Completed":
                return str(run_id)
            if status in ("Job Failed", "Job Skipped"):
                raise TransientGraphError(f"Meta's report job {run_id} ended with status {status!r}")
            if waited >= self.job_timeout:
                raise GraphError(f"Meta's report job {run_id} did not finish within {self.job_timeout:.0f} s")
            self.sleep(self.poll_interval)
            waited += self.poll_interval
