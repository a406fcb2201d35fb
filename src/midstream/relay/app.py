"""The relay's HTTP API (Starlette): start runs, read their events as resumable SSE, cancel them.

=====================================  ==========================================================
``POST /v1/runs``                      start a run: ``{"prompt", "provider"?, "model"?, "agent"?,
                                       "settings"?, "coalesce"?, "max_iterations"?, "max_tokens"?}``
                                       -> ``201 {"id", "url", "events", "cancel"}``; ``429``
                                       with ``Retry-After`` when the process or fleet is full
``GET /v1/runs``                       the most recent runs (``?limit=``)
``GET /v1/runs/{id}``                  status: state, last seq, terminal, cancel request
``GET /v1/runs/{id}/events``           SSE: ``id: <seq>``, ``event: <kind>``, ``data: <json>``;
                                       resume after ``Last-Event-ID`` or ``?after=<seq>``;
                                       ``?agent=`` keeps one agent's events
``POST /v1/runs/{id}/cancel``          stop the run wherever it executes: ``202``, idempotent
``GET /v1/runs/{id}/summary``          the run's figures (TTFT, duration, tokens, retries,
                                       per tool time to first argument byte) and timeline
                                       (:mod:`midstream.relay.summary`)
``GET /``                              the web page for a browser (:mod:`midstream.relay.web`),
                                       else this list as JSON
``POST /api/chat``                     the AI SDK's ``useChat``; ``GET /api/chat/{chatId}/stream``
                                       resumes it; ``POST /api/ag-ui`` for AG-UI clients; any run
                                       reads as either with ``?protocol=ai-sdk`` / ``?protocol=ag-ui``
                                       (:mod:`midstream.relay._protocols`)
=====================================  ==========================================================

The event stream starts with ``retry: <ms>``; a comment (``: ping``) is sent after ``heartbeat``
seconds of silence; a finished run replays to its ``run_end`` and the response ends. A cursor behind
the entries still kept gets ``event: resync`` with ``{"earliest": N}``, then the events from N. An
unknown or expired run is ``404`` with a JSON error, except for event-stream readers (``Accept:
text/event-stream``) and for a cursor already at the end of a finished run: those get ``204``, which
tells an ``EventSource`` to stop reconnecting.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from midstream.metrics import observers, record
from midstream.relay._protocols import PROTOCOLS, ProtocolRoutes, check_cursor
from midstream.relay.entry import LogEntry
from midstream.relay.errors import RelayError, RunNotFound, TooManyRuns
from midstream.relay.log import EventLog, Heartbeat, Resync, RunStatus
from midstream.relay.runner import Executor, RunRequest
from midstream.relay.summary import summarize
from midstream.relay.web import page, wants_page, web_routes
from midstream.wire.sse import encode_sse

__all__ = ["create_app", "run_links", "sse_entry"]

MAX_BODY = 1 << 20


def sse_entry(entry: LogEntry) -> bytes:
    """One log entry as an SSE event: ``id: <seq>``, ``event: <kind>``, ``data: <payload JSON>``."""
    data = json.dumps(entry.payload(), ensure_ascii=False, separators=(",", ":"), default=str)
    return encode_sse(data, event=entry.kind, id=str(entry.seq))


def run_links(run: str) -> dict[str, str]:
    """The URLs of a run, relative to the server."""
    base = f"/v1/runs/{run}"
    return {"url": base, "events": f"{base}/events", "cancel": f"{base}/cancel"}


def _error(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, **extra}}, status_code=status)


def _not_found(run: str) -> JSONResponse:
    return _error(404, "not_found", f"no run {run!r}: it does not exist or its replay period expired")


def _wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


class _Relay:
    def __init__(self, log: EventLog, executor: Executor | None, heartbeat: float, retry_ms: int) -> None:
        self.log, self.executor = log, executor
        self.heartbeat, self.retry_ms = heartbeat, retry_ms
        self.protocols = ProtocolRoutes(self)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index),
            Route("/healthz", self.health),
            Route("/v1/runs", self.create_run, methods=["POST"]),
            Route("/v1/runs", self.list_runs, methods=["GET"]),
            Route("/v1/runs/{run}", self.get_run, methods=["GET"]),
            Route("/v1/runs/{run}/events", self.events, methods=["GET"]),
            Route("/v1/runs/{run}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/runs/{run}/summary", self.summary, methods=["GET"]),
            Route("/api/chat", self.protocols.chat, methods=["POST"]),
            Route("/api/chat/{chat}/stream", self.protocols.chat_resume, methods=["GET"]),
            Route("/api/ag-ui", self.protocols.ag_ui, methods=["POST"]),
            *web_routes(),
        ]

    async def index(self, request: Request) -> Response:
        if wants_page(request):
            return page()
        return JSONResponse(
            {
                "service": "midstream relay",
                "store": self.log.name,
                "endpoints": {
                    "start a run": "POST /v1/runs",
                    "list runs": "GET /v1/runs",
                    "a run's status": "GET /v1/runs/{id}",
                    "a run's events (SSE, resumable)": "GET /v1/runs/{id}/events",
                    "cancel a run": "POST /v1/runs/{id}/cancel",
                    "a run's figures and timeline": "GET /v1/runs/{id}/summary",
                },
            }
        )

    async def health(self, request: Request) -> Response:
        await self.log.runs(limit=1)  # the store answers
        return JSONResponse({"ok": True, "store": self.log.name})

    async def create_run(self, request: Request) -> Response:
        if self.executor is None:
            return _error(503, "unavailable", "this relay only serves events: it executes no runs")
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, "too_large", f"the request body is larger than {MAX_BODY} bytes")
        try:
            run_request = RunRequest.model_validate_json(body or b"{}")
        except ValidationError as exc:
            errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)]
            return _error(422, "invalid_request", "the run request is not valid", details=errors)
        run = f"r_{uuid.uuid4().hex[:20]}"
        await self.log.create(run, meta=run_request.start_data())
        try:
            await self.executor.start(run, run_request)
        except TooManyRuns as exc:
            with contextlib.suppress(RelayError):
                await self.log.expire(run, 0)  # nothing will ever execute it
            response = _error(429, "too_many_runs", str(exc), limit=exc.limit, scope=exc.scope)
            response.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
            return response
        links = run_links(run)
        return JSONResponse({"id": run, **links}, status_code=201, headers={"location": links["url"]})

    async def list_runs(self, request: Request) -> Response:
        limit = _int_param(request.query_params.get("limit"), 50)
        if limit is None or not 1 <= limit <= 1000:
            return _error(400, "invalid_request", "limit must be an integer from 1 to 1000")
        return JSONResponse({"runs": [_status_json(s) for s in await self.log.runs(limit)]})

    async def get_run(self, request: Request) -> Response:
        run = request.path_params["run"]
        status = await self.log.status(run)
        if status is None:
            return _not_found(run)
        return JSONResponse(_status_json(status))

    async def summary(self, request: Request) -> Response:
        run = request.path_params["run"]
        status = await self.log.status(run)
        if status is None:
            return _not_found(run)
        entries: list[LogEntry] = []
        with contextlib.suppress(RunNotFound):  # expired between the two calls: what was read
            async for item in self.log.read(run, 0):
                if isinstance(item, LogEntry):
                    entries.append(item)
        return JSONResponse({**_status_json(status), **summarize(entries)})

    async def cancel(self, request: Request) -> Response:
        run = request.path_params["run"]
        reason = "cancelled through the relay"
        body = await request.body()
        if body:
            with contextlib.suppress(ValueError):
                given = json.loads(body).get("reason") if body.strip().startswith(b"{") else None
                if isinstance(given, str) and given.strip():
                    reason = given.strip()[:500]
        try:
            requested = await self.log.cancel(run, reason)
        except RunNotFound:
            return _not_found(run)
        status = await self.log.status(run)
        state = status.state if status is not None else "ended"
        return JSONResponse({"id": run, "cancel_requested": requested, "state": state}, status_code=202)

    async def events(self, request: Request) -> Response:
        run = request.path_params["run"]
        protocol = request.query_params.get("protocol", "midstream")
        if protocol not in ("midstream", *PROTOCOLS):
            return _error(
                400, "invalid_request", f"unknown protocol {protocol!r}: midstream, ai-sdk or ag-ui"
            )
        cursor = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        after = _int_param(cursor, 0) if protocol == "midstream" else 0
        problem = None if protocol == "midstream" else check_cursor(request)
        if after is None or after < 0 or problem is not None:
            message = problem or f"the cursor must be a seq (an integer >= 0), not {cursor!r}"
            return _error(400, "invalid_request", message)
        status = await self.log.status(run)
        if status is None:
            return Response(status_code=204) if _wants_stream(request) else _not_found(run)
        if protocol != "midstream":
            return self.protocols.events(request, run, protocol)
        if status.ended and after >= status.last_seq:
            return Response(status_code=204)  # nothing will ever follow: EventSource stops here
        headers = {
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            "x-midstream-run-id": run,
        }
        agent = request.query_params.get("agent")
        return StreamingResponse(
            self._stream(run, after, agent), media_type="text/event-stream; charset=utf-8", headers=headers
        )

    async def _stream(self, run: str, after: int, agent: str | None) -> AsyncIterator[bytes]:
        yield encode_sse(retry=self.retry_ms)
        with contextlib.suppress(RunNotFound):
            async for item in self.log.read(run, after, follow=True, heartbeat=self.heartbeat):
                if isinstance(item, Heartbeat):
                    yield encode_sse(comment="ping")
                elif isinstance(item, Resync):
                    data = {"kind": "resync", "run": run, "earliest": item.earliest, "reason": "trimmed"}
                    yield encode_sse(json.dumps(data), event="resync")
                elif agent is None or item.agent == agent or item.kind == "run_end":
                    if observers():  # telemetry: how long after its append this reader gets the entry
                        record("midstream.relay.replay_lag", max(0.0, time.time() - item.at))
                    yield sse_entry(item)


def _int_param(value: str | None, default: int) -> int | None:
    if value is None:
        return default
    try:
        return int(value.strip())
    except ValueError:
        return None


def _status_json(status: RunStatus) -> dict[str, Any]:
    out = status.as_dict()
    out.pop("owner", None)
    return {**out, **run_links(status.run)}


def create_app(
    log: EventLog,
    executor: Executor | None = None,
    *,
    heartbeat: float = 15.0,
    retry_ms: int = 3000,
    close_on_shutdown: bool = True,
) -> Starlette:
    """The relay's Starlette app over ``log``; ``executor`` runs what ``POST /v1/runs`` starts
    (None: a read-only relay). On shutdown the executor's runs are cancelled and the store closed."""
    if heartbeat <= 0:
        raise ValueError("heartbeat must be positive")
    relay = _Relay(log, executor, heartbeat, retry_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await log.runs(limit=1)  # fail at startup, not at the first request, if the store is unreachable
        try:
            yield
        finally:
            if executor is not None:
                await executor.aclose()
            if close_on_shutdown:
                await log.aclose()

    app = Starlette(routes=relay.routes(), lifespan=lifespan)
    app.state.relay = relay
    return app
