"""A local stand-in for Meta's Graph API (Marketing API), for the Ads sync's tests and bench/meta.py.

It serves, on 127.0.0.1, the calls the sync makes, in the shape Meta documents them:

- ``GET /{v}/act_{id}/ads``: Ad objects (``id, name, status, effective_status, created_time, campaign{name},
  adset{name}, creative{...}, preview_shareable_link``); without ``filtering`` it leaves out DELETED and
  ARCHIVED ads, as Meta does; cursor paging (``paging.cursors.after``, ``paging.next``).
- ``GET /{v}/act_{id}/insights?level=ad&time_increment=1&time_range={...}``: one row per ad per day with
  delivery, numbers as strings, ``actions`` as ``[{action_type, value}]``; ads without delivery on a day
  have no row. Paged the same way.
- ``POST /{v}/act_{id}/insights``: an asynchronous report job (``{"report_run_id": ...}``), whose status
  ``GET /{v}/{report_run_id}`` goes "Job Not Started" → "Job Running" → "Job Completed", and whose rows
  ``GET /{v}/{report_run_id}/insights`` serves.
- Errors as Meta sends them: ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``,
  code 190 for a bad token, 17/613 for throttling; usage headers on every answer.

Failures are injected by the test: ``fail_next`` answers the next requests with the given status and
body; ``usage`` sets the usage headers' percentages; ``expire`` makes a token dead.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

HIDDEN_BY_DEFAULT = {"DELETED", "ARCHIVED"}


@dataclass
class FakeAccount:
    id: str  # digits, without act_
    token: str
    ads: list[dict[str, Any]] = field(default_factory=list)
    # (ad_id, day) -> {"spend": "1.23", "impressions": "10", ..., "actions": [...]}
    insights: dict[tuple[str, date], dict[str, Any]] = field(default_factory=dict)

    def insight_rows(self, since: date, until: date) -> list[dict[str, Any]]:
        by_id = {a["id"]: a for a in self.ads}
        rows = []
        in_window = sorted((key, values) for key, values in self.insights.items() if since <= key[1] <= until)
        for (ad_id, day), values in in_window:
            ad = by_id.get(ad_id, {})
            rows.append({"ad_id": ad_id, "ad_name": ad.get("name"), "adset_id": ad.get("adset_id"),
                         "campaign_id": ad.get("campaign_id"), "date_start": day.isoformat(),
                         "date_stop": day.isoformat(), **values})
        return rows


def error_body(code: int, message: str, *, subcode: int | None = None, kind: str = "OAuthException") -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGh123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def _top_fields(fields: str) -> set[str]:
    names, depth, current = set(), 0, ""
    for ch in fields:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            names.add(current.strip())
            current = ""
            continue
        if depth == 0 and ch not in "{}":
            current += ch
    names.add(current.strip())
    return {n for n in names if n}


class FakeGraph:
    def __init__(self, *, job_polls: int = 2, port: int | None = None) -> None:
        self.accounts: dict[str, FakeAccount] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_next: list[tuple[int, dict[str, Any]]] = []
        self.usage: dict[str, float] = {}
        self.expired: set[str] = set()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.job_polls = job_polls
        self.lock = threading.Lock()
        app = FastAPI()

        @app.api_route("/{version}/{path:path}", methods=["GET", "POST"])
        async def graph(request: Request, version: str, path: str) -> JSONResponse:
            # Meta's POST parameters come form-encoded (read by hand: no python-multipart needed).
            form = dict(parse_qsl((await request.body()).decode())) if request.method == "POST" else {}
            params = {**dict(request.query_params), **form}
            token = (request.headers.get("authorization") or "").removeprefix("Bearer ") or params.get("access_token")
            with self.lock:
                self.requests.append({"method": request.method, "path": path, "version": version,
                                      "token": token, "params": params})
                injected = self.fail_next.pop(0) if self.fail_next else None
            if injected is not None:
                return self._answer(injected[1], injected[0])
            if token in self.expired:
                return self._answer(error_body(190, "Error validating access token: Session has expired on "
                                               "Tuesday, 25-Nov-25 10:00:00 PST.", subcode=463), 400)
            known = {a.token for a in self.accounts.values()}
            if token not in known:
                return self._answer(error_body(190, "Invalid OAuth access token - Cannot parse access token"), 400)
            return self._route(request.method, path, params, token)

        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    # -------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeGraph:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Graph API did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def add(self, account: FakeAccount) -> FakeAccount:
        self.accounts[account.id] = account
        return account

    def calls(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Requests so far; ``kind`` = the last path segment (ads, insights) or 'job' for job polls."""
        with self.lock:
            done = list(self.requests)
        if kind is None:
            return done
        if kind == "job":
            return [r for r in done if r["path"] in self.jobs]
        return [r for r in done if r["path"].rsplit("/", 1)[-1] == kind]

    # ------------------------------------------------------------------------------------ answers

    def _answer(self, body: dict[str, Any], status: int = 200) -> JSONResponse:
        headers = {}
        if self.usage:
            pct = self.usage.get("business", 0.0)
            headers["x-business-use-case-usage"] = json.dumps({"1234567890": [{
                "type": "ads_insights", "call_count": pct, "total_cputime": pct / 2, "total_time": pct / 2,
                "estimated_time_to_regain_access": self.usage.get("regain_minutes", 0)}]})
            headers["x-ad-account-usage"] = json.dumps({
                "acc_id_util_pct": self.usage.get("account", 0.0), "reset_time_duration": 0,
                "ads_api_access_tier": "standard_access"})
        return JSONResponse(body, status_code=status, headers=headers)

    def _account_for(self, segment: str, token: str) -> FakeAccount | JSONResponse:
        account = self.accounts.get(segment.removeprefix("act_"))
        if account is None:
            return self._answer(error_body(100, f"Unsupported get request. Object with ID '{segment}' does not "
                                           "exist", subcode=33, kind="GraphMethodException"), 400)
        if account.token != token:
            return self._answer(error_body(200, "(#200) Ad account owner has NOT grant ads_management or "
                                           "ads_read permission", kind="OAuthException"), 403)
        return account

    def _page(self, rows: list[dict[str, Any]], path: str, params: dict[str, str]) -> JSONResponse:
        limit = min(int(params.get("limit", 25)), 5000)
        start = int(base64.b64decode(params["after"]).decode()) if params.get("after") else 0
        chunk = rows[start:start + limit]
        body: dict[str, Any] = {"data": chunk}
        if rows:
            body["paging"] = {"cursors": {"before": base64.b64encode(str(start).encode()).decode(),
                                          "after": base64.b64encode(str(start + len(chunk)).encode()).decode()}}
            if start + limit < len(rows):
                keep = {k: v for k, v in params.items() if k not in ("after", "access_token")}
                keep["after"] = body["paging"]["cursors"]["after"]
                query = "&".join(f"{k}={_quote(v)}" for k, v in keep.items())
                body["paging"]["next"] = f"{self.url}/{self._version}/{path}?{query}"
        return self._answer(body)

    def _route(self, method: str, path: str, params: dict[str, str], token: str) -> JSONResponse:
        self._version = self.requests[-1]["version"]
        parts = path.strip("/").split("/")
        if len(parts) == 1 and parts[0] in self.jobs and method == "GET":
            job = self.jobs[parts[0]]
            job["polls"] += 1
            status = ("Job Not Started" if job["polls"] == 1 else
                      "Job Completed" if job["polls"] > self.job_polls else "Job Running")
            if job.get("fail"):
                status = "Job Failed"
            percent = 100 if status == "Job Completed" else 50 * (job["polls"] - 1)
            return self._answer({"id": parts[0], "async_status": status, "async_percent_completion": percent})
        if len(parts) == 2 and parts[0] in self.jobs and parts[1] == "insights":
            job = self.jobs[parts[0]]
            return self._page(job["rows"], path, params)
        if len(parts) != 2:
            return self._answer(error_body(100, "Unknown path components", kind="OAuthException"), 400)
        found = self._account_for(parts[0], token)
        if isinstance(found, JSONResponse):
            return found
        account = found
        if parts[1] == "ads" and method == "GET":
            wanted: set[str] | None = None
            if "filtering" in params:
                for rule in json.loads(params["filtering"]):
                    if rule.get("field") == "effective_status" and rule.get("operator") == "IN":
                        wanted = set(rule["value"])
            fields = _top_fields(params.get("fields", "id"))
            ads = [{k: v for k, v in ad.items() if k in fields or k == "id"} for ad in account.ads
                   if (ad["effective_status"] in wanted if wanted is not None
                       else ad["effective_status"] not in HIDDEN_BY_DEFAULT)]
            return self._page(ads, path, params)
        if parts[1] == "insights":
            if params.get("level") != "ad" or params.get("time_increment") != "1":
                return self._answer(error_body(100, "The fake serves level=ad, time_increment=1 only",
                                               kind="OAuthException"), 400)
            window = json.loads(params["time_range"])
            rows = account.insight_rows(date.fromisoformat(window["since"]), date.fromisoformat(window["until"]))
            if method == "POST":
                run_id = f"{len(self.jobs) + 6000000000001}"
                self.jobs[run_id] = {"rows": rows, "polls": 0, "fail": params.get("_fail_job") == "1"}
                return self._answer({"report_run_id": run_id})
            return self._page(rows, path, params)
        return self._answer(error_body(100, f"Unknown edge {parts[1]}", kind="OAuthException"), 400)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


# --------------------------------------------------------------------------------- generated data


def generated_ad(account: str, n: int, *, status: str = "ACTIVE", video: bool = False) -> dict[str, Any]:
    """An Ad object as the ads edge returns it with the sync's fields."""
    ad_id = f"{account}{n:06d}"
    spec: dict[str, Any]
    if video:
        spec = {"page_id": "111", "video_data": {"video_id": f"v{ad_id}", "message": f"Video ad {n} copy",
                                                 "title": f"Video headline {n}", "image_url": f"https://img/{n}.jpg"}}
    else:
        spec = {"page_id": "111", "link_data": {"message": f"Ad {n} copy", "name": f"Headline {n}",
                                                "picture": f"https://img/{n}.jpg", "link": "https://example.com"}}
    return {
        "id": ad_id, "name": f"Ad {n}", "status": "ACTIVE" if status == "ACTIVE" else "PAUSED",
        "effective_status": status, "created_time": "2025-08-01T09:30:00+0000",
        "updated_time": "2025-11-01T10:00:00+0000", "campaign_id": f"c{account}{n % 7}",
        "adset_id": f"s{account}{n % 23}", "campaign": {"name": f"Campaign {n % 7}", "id": f"c{account}{n % 7}"},
        "adset": {"name": f"Ad set {n % 23}", "id": f"s{account}{n % 23}"},
        "preview_shareable_link": f"https://fb.me/preview{ad_id}",
        "creative": {"id": f"cr{ad_id}", "name": f"Creative {n}", "object_story_spec": spec,
                     "effective_object_story_id": f"111_{ad_id}", "thumbnail_url": f"https://thumb/{n}.jpg"},
    }


def generated_account(account: str, token: str, ads: int, days: int, until: date) -> FakeAccount:
    """``ads`` ads, each with a row on each of ``days`` days ending ``until`` (bench size: 2,000 × 90)."""
    fake = FakeAccount(account, token, [generated_ad(account, n) for n in range(ads)])
    for n, ad in enumerate(fake.ads):
        for d in range(days):
            day = until - timedelta(days=d)
            spend = (n * 13 + d * 7) % 5000 / 100 + 1
            fake.insights[(ad["id"], day)] = {
                "spend": f"{spend:.2f}", "impressions": str(100 + n % 50 + d), "clicks": str(3 + n % 5),
                "reach": str(80 + n % 40), "actions": [{"action_type": "link_click", "value": str(2 + n % 3)},
                                                       {"action_type": "lead", "value": str(n % 2)}]}
    return fake


def main() -> None:
    """Serve a generated account until killed (bench/meta.py runs the fake in its own process)."""
    import argparse

    parser = argparse.ArgumentParser(description="A fake Graph API serving one generated ad account.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--account", default="777")
    parser.add_argument("--token", required=True)
    parser.add_argument("--ads", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--until", type=date.fromisoformat, required=True)
    args = parser.parse_args()
    fake = FakeGraph(port=args.port)
    fake.add(generated_account(args.account, args.token, args.ads, args.days, args.until))
    fake.server.run()


if __name__ == "__main__":
    main()
