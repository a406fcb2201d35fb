"""The relay's routes for existing front ends: the AI SDK's ``useChat`` and AG-UI clients.

Both protocols are computed from the run's log at read time by the pure translators of
:mod:`midstream.relay.adapters`, so every route is "follow the log, translate, frame":

====================================  ===========================================================
``POST /api/chat``                    ``useChat``'s body: starts a run, streams its UI message
``GET /api/chat/{chatId}/stream``     ``useChat``'s resume: the chat's current message again, from
                                      its ``start`` chunk; ``204`` when no message is streaming
``POST /api/ag-ui``                   an AG-UI ``RunAgentInput``: starts a run, streams AG-UI events
``GET /v1/runs/{id}/events?protocol=ai-sdk|ag-ui``
                                      any run in either protocol, resumable by ``Last-Event-ID`` /
                                      ``?after=`` (the adapter's ``<seq>`` or ``<seq>.<n>`` ids)
====================================  ===========================================================

A reader that keeps the SSE ids can resume exactly; the AI SDK and AG-UI clients ignore them, and
``useChat`` resumes by replaying the message from its start, which the translators make cheap and
exact (replay + skip).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from midstream.relay.adapters import (
    SSE_DONE,
    AGUIEvents,
    ChatRequestError,
    RunAgentInputError,
    Translator,
    UIMessageStream,
    parse_chat_request,
    parse_cursor,
    parse_run_agent_input,
    sse_body,
)
from midstream.relay.adapters import agui as _agui
from midstream.relay.adapters import aisdk as _aisdk
from midstream.relay.runner import RunRequest

if TYPE_CHECKING:
    from midstream.relay.app import _Relay

__all__ = ["PROTOCOLS", "ProtocolRoutes", "check_cursor"]

PROTOCOLS = ("ai-sdk", "ag-ui")
_RUN_OPTIONS = ("provider", "model", "agent", "settings", "coalesce", "max_iterations", "max_tokens")


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


class ProtocolRoutes:
    """The handlers; ``relay`` supplies the log, the executor and the heartbeat."""

    def __init__(self, relay: _Relay) -> None:
        self.relay = relay

    async def _body(self, request: Request) -> Any:
        raw = await request.body()
        if len(raw) > 1 << 20:
            raise ValueError("the request body is larger than 1 MiB")
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise ValueError("the request body is not JSON") from None

    async def _start(
        self, prompt: str, history: Sequence[tuple[str, str]], options: Mapping[str, Any], tag: str
    ) -> str:
        executor = self.relay.executor
        if executor is None:
            raise LookupError("this relay only serves events: it executes no runs")
        # The earlier text messages of the conversation; system, developer and tool messages stay out
        # (the server's settings own the system prompt; tool calls are not replayed from a browser).
        said = [{"role": r, "content": t} for r, t in history if r in ("user", "assistant") and t]
        run_request = RunRequest.model_validate(
            {"prompt": prompt, "history": said, **{k: options[k] for k in _RUN_OPTIONS if k in options}}
        )
        run = f"r_{uuid.uuid4().hex[:20]}"
        await self.relay.log.create(run, meta=run_request.start_data(), tag=tag)
        await executor.start(run, run_request)
        return run

    async def chat(self, request: Request) -> Response:
        """``POST /api/chat``: ``useChat``'s request; the response is the new assistant message."""
        try:
            body = parse_chat_request(await self._body(request))
            run = await self._start(body.prompt, body.history, body.extra, f"chat:{body.chat_id}")
        except (ChatRequestError, ValueError, ValidationError) as exc:
            return _error(400, "invalid_request", str(exc))
        except LookupError as exc:
            return _error(503, "unavailable", str(exc))
        return self._stream(run, UIMessageStream(version=_version(request)), None, _aisdk.HEADERS, SSE_DONE)

    async def chat_resume(self, request: Request) -> Response:
        """``GET /api/chat/{chatId}/stream``: the chat's streaming message from its ``start``, or 204."""
        run = await self.relay.log.latest(f"chat:{request.path_params['chat']}")
        status = None if run is None else await self.relay.log.status(run)
        if run is None or status is None or status.ended:
            return Response(status_code=204)  # nothing is streaming: useChat shows what it has
        translator = UIMessageStream(version=_version(request))
        return self._stream(run, translator, _cursor(request), _aisdk.HEADERS, SSE_DONE)

    async def ag_ui(self, request: Request) -> Response:
        """``POST /api/ag-ui``: a ``RunAgentInput``; the response is the run as AG-UI events."""
        try:
            run_input = parse_run_agent_input(await self._body(request))
            props = run_input.forwarded_props if isinstance(run_input.forwarded_props, Mapping) else {}
            tag = f"ag-ui:{run_input.thread_id}"
            run = await self._start(run_input.prompt, run_input.history, props, tag)
        except (RunAgentInputError, ValueError, ValidationError) as exc:
            return _error(400, "invalid_request", str(exc))
        except LookupError as exc:
            return _error(503, "unavailable", str(exc))
        return self._stream(run, AGUIEvents(run_input), None, _agui.HEADERS, None)

    def events(self, request: Request, run: str, protocol: str) -> Response:
        """``GET /v1/runs/{id}/events?protocol=...``: any run through an adapter, resumable."""
        translator: Translator
        if protocol == "ai-sdk":
            translator, headers, done = UIMessageStream(version=_version(request)), _aisdk.HEADERS, SSE_DONE
        else:
            translator, headers, done = AGUIEvents(), _agui.HEADERS, None
        return self._stream(run, translator, _cursor(request), headers, done)

    def _stream(
        self,
        run: str,
        translator: Translator,
        after: str | None,
        headers: Mapping[str, str],
        done: bytes | None,
    ) -> Response:
        sent = {k: v for k, v in headers.items() if k != "content-type"}
        body = self._frames(run, translator, after, done)
        return StreamingResponse(
            body, media_type=headers.get("content-type"), headers={**sent, "x-midstream-run-id": run}
        )

    async def _frames(
        self, run: str, translator: Translator, after: str | None, done: bytes | None
    ) -> AsyncIterator[bytes]:
        """The run's log, followed from its start, as the protocol's SSE body (the reader's cursor
        skips what it has seen); a log that ends before ``run_end`` ends the protocol too."""
        items = self.relay.log.read(run, 0, follow=True, heartbeat=self.relay.heartbeat)
        async for frame in sse_body(translator, items, after=after, close=True):
            yield frame
        if done is not None:
            yield done


def _version(request: Request) -> int:
    value = request.query_params.get("version", "7")
    return int(value) if value in ("5", "6", "7") else 7


def _cursor(request: Request) -> str | None:
    return request.headers.get("last-event-id") or request.query_params.get("after") or None


def check_cursor(request: Request) -> str | None:
    """The adapter cursor of a request, or the message that refuses it."""
    try:
        parse_cursor(_cursor(request))
    except ValueError as exc:
        return str(exc)
    return None
