"""The simulator's HTTP server: every provider's streaming endpoint, scripted, paced and faulty on demand.

Routes (all ``POST`` unless noted):

* every provider profile's endpoints (:attr:`midstream.wire.profiles.ProviderProfile.endpoints`), each
  answered in the profile's dialect: ``/v1/messages`` (Anthropic), ``/v1/chat/completions`` (OpenAI Chat,
  and any OpenAI-compatible client), ``/v1/responses`` (OpenAI Responses);
  ``/v1beta/models/{model}:streamGenerateContent`` (``?alt=sse`` for SSE, a JSON array otherwise) and
  ``:generateContent`` (Gemini API, also under ``/v1/models``), the same methods under Vertex AI's
  ``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}`` and ``/v1/publishers/google/...``;
  ``/model/{model_id}/converse-stream`` and ``/converse`` (Bedrock), ``/api/chat`` and
  ``/api/generate`` (Ollama); and those of any provider registered before the simulator is made;
* the side endpoints clients call (token counts, model lists and details, Ollama's ``/api/tags`` ...,
  see :mod:`midstream.sim.endpoints`) and ``GET /v1/responses/{id}`` for a stored Responses answer;
  every other route is a 404 in the shape of the provider the request is for;
* ``GET /_sim/requests``: one record per request, side endpoints (token counts, model lists, ...)
  included (provider, scenario, tokens generated, whether and when the client disconnected, tokens
  generated after that); ``DELETE`` clears it and the fault counters; ``GET /_sim/health``.

Request headers the simulator reads: ``x-midstream-scenario`` picks a scenario by name,
``x-midstream-fault`` injects faults (see :class:`~midstream.sim.scenarios.FaultSpec`) and
``x-midstream-seed`` pins the seed of that one response (same seed, same body, same bytes).
Credentials in requests are never stored or printed.

Requests are checked as each provider checks them (:meth:`midstream.wire.request.RequestDialect.check`)
and refused with the provider's own 400; ``tool_choice`` and structured output shape the answer as they
would the model's; an OpenAI Responses request with ``previous_response_id`` continues the stored
conversation it names (see :mod:`midstream.sim.conversations`).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from midstream import wire
from midstream.errors import MidstreamError, classify_error
from midstream.sim import endpoints
from midstream.sim.conversations import DEFAULT_STORED_RESPONSES, ResponseStore
from midstream.sim.nonstream import error_body, nonstream_body, responses_body
from midstream.sim.requests import SimRequest, load_body, parse_request
from midstream.sim.scenarios import (
    FaultSpec,
    LatencySpec,
    Scenario,
    ScenarioBook,
    ScenarioError,
    default_parts,
    honour_choice,
    parts_for,
    pick_turn,
)
from midstream.sim.script import ArgsMode, Part, Step, TextPart, ThinkingPart, ToolPart, plan
from midstream.sim.stream import RequestRecord, SimStream, chunks
from midstream.wire.gemini import synthetic_call_id
from midstream.wire.profiles import PROFILES, Endpoint, ProviderProfile, profile
from midstream.wire.request import Answering, RequestRejected

__all__ = ["DEFAULT_BODY_TIMEOUT", "DEFAULT_MAX_REQUEST_BYTES", "RequestRecord", "Simulator"]

_Handler = Callable[[Request], Awaitable[Response]]

DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""The simulator's cap on a request body (Anthropic's Messages API allows 32 MB): larger is a 413."""
DEFAULT_BODY_TIMEOUT = 30.0
"""Seconds a request body may take to arrive once its headers have: later is a 408 and a closed connection."""

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _random_id(rng: random.Random, prefix: str, length: int = 24) -> str:
    return prefix + "".join(rng.choice(_ALNUM) for _ in range(length))


@dataclasses.dataclass
class _Call:
    """One request on its way through :meth:`Simulator._serve`."""

    provider: str
    dialect: str
    req: SimRequest
    scenario: Scenario | None
    fault: FaultSpec
    record: RequestRecord
    rng: random.Random
    request_id: str
    endpoint: Endpoint
    inputs: list[Any] | None = None  # a Responses conversation's input items, kept if it is stored

    @property
    def api(self) -> str | None:
        """The endpoint's variant of the dialect (Ollama's ``generate``, Gemini's framing)."""
        return self.endpoint.api


class Simulator:
    """The simulator as a Starlette app (:attr:`app`), with its request log and fault counters.

    ``speed`` scales every delay (``0``: no waiting), ``seed`` makes ids, padding and jitter
    reproducible per request number, ``realism`` turns on each provider's byte-level quirks. A request
    body larger than ``max_request_bytes`` gets a 413; one still arriving ``body_timeout`` seconds after
    its headers (a slow upload, or a client that never sends the bytes it declared) gets a 408, both in
    the provider's error shape, and the 408 closes the connection.
    """

    def __init__(
        self,
        scenarios: ScenarioBook | None = None,
        *,
        speed: float = 1.0,
        seed: int = 0,
        realism: bool = True,
        max_records: int = 1000,
        latency: LatencySpec | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        stored_responses: int = DEFAULT_STORED_RESPONSES,
    ) -> None:
        self.book = scenarios or ScenarioBook()
        self.max_request_bytes = max_request_bytes
        self.body_timeout = body_timeout
        self.speed = speed
        self.seed = seed
        self.realism = realism
        self.latency = latency or LatencySpec()
        self.records: deque[RequestRecord] = deque(maxlen=max_records)
        self._count = 0
        self._fault_hits: dict[str, int] = {}
        self._t0 = time.monotonic()
        self.responses = ResponseStore(stored_responses)
        handlers = {404: endpoints.not_found, 405: endpoints.not_found}
        self.app = Starlette(routes=self._routes(), exception_handlers=handlers)

    @property
    def request_count(self) -> int:
        """How many requests arrived since the simulator started (the log keeps only the newest)."""
        return self._count

    def _routes(self) -> list[Route]:
        side = endpoints  # the side endpoints: token counts, model lists, Ollama's /api/tags ...
        logged = self._logged  # recorded in /_sim/requests like the generation endpoints
        return [
            Route("/v1/messages/count_tokens", logged(side.anthropic_count_tokens), methods=["POST"]),
            Route("/v1/models", logged(side.models), methods=["GET"]),
            Route("/v1/models/{target}", logged(side.model), methods=["GET"]),
            Route("/v1/responses/{response_id}", logged(self._stored, "openai-responses"), methods=["GET"]),
            Route("/v1beta/models", logged(side.gemini_models), methods=["GET"]),
            Route("/v1beta/models/{target}", logged(side.gemini_model), methods=["GET"]),
            Route("/model/{model_id:path}/count-tokens", logged(side.bedrock_count_tokens), methods=["POST"]),
            Route("/api/tags", logged(side.ollama_tags), methods=["GET"]),
            Route("/api/show", logged(side.ollama_show), methods=["POST"]),
            Route("/api/version", logged(side.ollama_version), methods=["GET"]),
            Route("/api/ps", logged(side.ollama_ps), methods=["GET"]),
            *self._generation_routes(),
            # Gemini's other methods on a model (countTokens; an unknown one is Gemini's 404).
            *(Route(path, logged(side.gemini_method), methods=["POST"]) for path in side.GEMINI_MODEL_PATHS),
            Route("/_sim/requests", self._requests, methods=["GET", "DELETE"]),
            Route("/_sim/health", self._health, methods=["GET"]),
        ]

    def _logged(self, handler: _Handler, provider: str | None = None) -> _Handler:
        """``handler`` with each request it answers in :attr:`records` (provider, path, model, status);
        the provider is read from the request unless given."""

        async def logged(request: Request) -> Response:
            self._count += 1
            params = request.path_params
            model = str(params.get("model_id") or params.get("target") or "").partition(":")[0]
            name = provider or endpoints.guess_provider(request.url.path, request.headers)
            record = self._record(self._count, name, request, model, None, stream=False)
            response = await handler(request)
            record.status = response.status_code
            record.bytes_sent = len(getattr(response, "body", b"") or b"")
            record.finish()
            self.records.append(record)
            return response

        return logged

    def _generation_routes(self) -> list[Route]:
        """One route per endpoint path of every provider profile; a path an earlier profile serves is
        served as that one (``openai-compatible`` clients reach ``openai-chat``)."""
        served: dict[str, tuple[str, list[Endpoint]]] = {}
        for p in PROFILES.values():
            for endpoint in p.endpoints:
                provider, variants = served.setdefault(endpoint.path, (p.name, []))
                if provider == p.name:
                    variants.append(endpoint)
        return [
            Route(path, self._endpoint(provider, tuple(variants)), methods=["POST"])
            for path, (provider, variants) in served.items()
        ]

    def _endpoint(
        self, provider: str, variants: tuple[Endpoint, ...]
    ) -> Callable[[Request], Awaitable[Response]]:
        """The handler of one path: the first of its endpoints whose query the request has."""

        async def serve(request: Request) -> Response:
            query = request.query_params
            endpoint = next(
                (e for e in variants if all(query.get(k) == v for k, v in e.query.items())), variants[-1]
            )
            return await self._serve(provider, request, endpoint)

        return serve

    # -- endpoints ---------------------------------------------------------------------------------

    async def _requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.records.clear()
            self._fault_hits.clear()
            return JSONResponse({"cleared": True})
        return JSONResponse([r.as_dict() for r in self.records])

    async def _stored(self, request: Request) -> Response:
        response_id = request.path_params["response_id"]
        stored = self.responses.response(response_id)
        if stored is None:
            message = f"No response found with id '{response_id}'."
            payload, headers = error_body("openai-responses", 404, "invalid_request", message)
            return Response(payload, 404, headers=headers, media_type="application/json")
        return JSONResponse(stored)

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "requests": self._count})

    # -- the common path ---------------------------------------------------------------------------

    async def _serve(self, provider: str, request: Request, endpoint: Endpoint) -> Response:
        self._count += 1
        model = request.path_params.get("model")
        call = await self._read(provider, request, self._count, model, endpoint)
        if isinstance(call, Response):
            return call
        http_fault = self._http_fault(call)
        if http_fault is not None:
            return http_fault
        try:
            steps = self._plan(call)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
            # Fields the lenient reading let through (a schema or budget of the wrong shape) that the
            # script cannot use: the client's mistake, answered as the provider would.
            return self._error(call, 400, "invalid_request", f"bad request: {exc}")
        call.record.stop_reason = _stop_reason(steps)
        if call.inputs is not None and call.req.store:
            self._store(call, steps)
        if not call.req.stream:
            return await self._nonstream(call, steps)
        try:
            encoder = wire.encoder(call.dialect, **self._encoder_options(call))
        except (MidstreamError, ImportError, AttributeError, TypeError) as exc:
            return self._error(call, 500, "server", f"the simulator cannot write {provider}: {exc}")
        body = chunks(provider, encoder, call.record, steps, call.fault, call.request_id)
        media = endpoint.media_type or profile(provider).media_type
        delay = (call.fault.first_byte_delay_ms or 0) / 1000.0
        return SimStream(call.record, body, media, self._headers(call), first_byte_delay=delay)

    async def _read(
        self,
        provider: str,
        request: Request,
        number: int,
        model: str | None,
        endpoint: Endpoint,
    ) -> _Call | Response:
        """The request read and its scenario and faults chosen, or the 400 answer to a bad one."""
        stream, dialect = endpoint.stream, profile(provider).dialect
        headers = request.headers
        seed = headers.get("x-midstream-seed")
        rng = random.Random(f"{self.seed}:{number}" if seed is None else f"pinned:{seed}")
        request_id = _random_id(rng, "req_011C", 20)
        try:
            async with asyncio.timeout(self.body_timeout):
                raw = await _bounded_body(request, self.max_request_bytes)
        except TimeoutError:
            record = self._record(number, provider, request, model or "", None, stream=bool(stream))
            record.status = 408
            record.finish()
            self.records.append(record)
            message = f"the request body did not arrive within {self.body_timeout:g} s"
            payload, extra = error_body(provider, 408, "invalid_request", message, request_id)
            # The rest of the body may still be on its way: the connection cannot carry another request.
            extra["connection"] = "close"
            return Response(payload, 408, headers=extra, media_type="application/json")
        if raw is None:
            record = self._record(number, provider, request, model or "", None, stream=bool(stream))
            record.status, record.completed = 413, True
            self.records.append(record)
            message = f"request body larger than {self.max_request_bytes} bytes"
            payload, extra = error_body(provider, 413, "request_too_large", message, request_id)
            return Response(payload, 413, headers=extra, media_type="application/json")
        try:
            body = load_body(raw)
            # Only the headers that change the answer are handed on; credentials stay behind.
            wanted = {k: headers[k] for k in wire.request_dialect(dialect).headers_read if k in headers}
            req = parse_request(provider, body, wanted, model=model)
            wire.request_dialect(dialect).check(body, req)
            inputs = None
            if req.store or req.previous_response_id is not None:  # a conversation kept by the provider
                body, inputs = self.responses.resume(body, req.previous_response_id)
                req = parse_request(provider, body, wanted, model=model)
            scenario = self._scenario(provider, req, headers.get("x-midstream-scenario"))
            fault = self._fault(scenario, headers.get("x-midstream-fault"))
        except RequestRejected as exc:
            return self._refuse(number, provider, request, model, stream, exc, request_id)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, ScenarioError) as exc:
            record = self._record(number, provider, request, model or "", None, stream=bool(stream))
            record.status, record.completed = 400, True
            self.records.append(record)
            payload, extra = error_body(provider, 400, "invalid_request", f"bad request: {exc}", request_id)
            return Response(payload, 400, headers=extra, media_type="application/json")
        if stream is not None:
            req.stream = stream
        record = self._record(number, provider, request, req.model, scenario, stream=req.stream)
        self.records.append(record)
        return _Call(
            provider, dialect, req, scenario, fault or FaultSpec(), record, rng, request_id, endpoint, inputs
        )

    def _refuse(
        self,
        number: int,
        provider: str,
        request: Request,
        model: str | None,
        stream: bool | None,
        exc: RequestRejected,
        request_id: str,
    ) -> Response:
        """The provider's answer to a request it refuses, recorded."""
        record = self._record(number, provider, request, model or "", None, stream=bool(stream))
        record.status, record.completed = exc.status, True
        self.records.append(record)
        dialect = wire.request_dialect(profile(provider).dialect)
        payload = dialect.rejection(exc, request_id)
        if payload is None:
            payload, extra = dialect.error_body(exc.status, "invalid_request", exc.message, request_id, None)
        else:
            extra = {}
        return JSONResponse(payload, exc.status, headers=extra)

    def _record(
        self,
        number: int,
        provider: str,
        request: Request,
        model: str,
        scenario: Scenario | None,
        *,
        stream: bool,
    ) -> RequestRecord:
        # The path only: a query string may carry a key (Gemini's ?key=).
        now = time.monotonic()
        return RequestRecord(
            id=number,
            provider=provider,
            path=request.url.path,
            model=model,
            scenario=scenario.name if scenario else None,
            stream=stream,
            received_ms=round((now - self._t0) * 1000.0, 3),
            _t0=now,
        )

    def _scenario(self, provider: str, req: SimRequest, name: str | None) -> Scenario | None:
        if name:
            scenario = self.book.named(name)
            if scenario is None:
                raise ScenarioError(f"no scenario named {name!r}")
            return scenario
        return self.book.choose(provider, req.last_user, req.tools)

    def _fault(self, scenario: Scenario | None, header: str | None) -> FaultSpec | None:
        if header:
            return FaultSpec.from_header(header)
        return scenario.faults if scenario else None

    def _http_fault(self, call: _Call) -> Response | None:
        fault = call.fault
        if fault.http_status is None:
            return None
        # HTTP faults count per scenario and fault: the first ``times`` such requests fail.
        key = f"{call.scenario.name if call.scenario else ''}|{fault.model_dump_json()}"
        hits = self._fault_hits.get(key, 0)
        if hits >= fault.times:
            return None
        self._fault_hits[key] = hits + 1
        status = fault.http_status
        kind, _ = classify_error(None, status)  # what the provider's body says for this status
        response = self._error(call, status, kind, f"simulated {status}", retry_delay=fault.retry_delay())
        if fault.retry_after is not None:
            response.headers["retry-after"] = fault.retry_after
        if fault.retry_after_ms is not None:
            response.headers["retry-after-ms"] = str(fault.retry_after_ms)
        call.record.fault = f"http {status}"
        return response

    def _error(
        self, call: _Call, status: int, kind: str, message: str, *, retry_delay: float | None = None
    ) -> Response:
        payload, extra = error_body(
            call.provider, status, kind, message, call.request_id, retry_delay=retry_delay
        )
        call.record.status = status
        call.record.finish()
        headers = {**self._headers(call), **extra}
        return Response(payload, status, headers=headers, media_type="application/json")

    # -- planning ----------------------------------------------------------------------------------

    def _plan(self, call: _Call) -> list[Step]:
        provider, req, rng = call.provider, call.req, call.rng
        habits = profile(provider)

        def new_id() -> str:
            return _random_id(rng, habits.tool_id_prefix, habits.id_length)

        def default() -> list[Part]:
            return default_parts(
                req.last_user,
                req.tools,
                req.last_tool_result is not None,
                new_id,
                choice=req.tool_choice,
                output=req.output,
                called=req.called_tools,
            )

        if call.scenario is not None:
            turn = pick_turn(call.scenario, req.assistant_turns, req.last_tool_result)
            parts = honour_choice(parts_for(turn, new_id), req.tool_choice, default)
        else:
            parts = default()
        parts = [self._fit(habits, p, rng) for p in parts if self._keeps(habits, req, p)]
        if req.prefill:
            parts = _after_prefill(parts, req.prefill)
        prefix = habits.response_id_prefix
        response_id = None if prefix is None else _random_id(rng, prefix, habits.id_length)
        if not habits.calls_have_ids:
            parts = _derived_ids(parts, response_id)
        spec = call.scenario.latency if call.scenario and call.scenario.latency else self.latency
        return plan(
            parts,
            provider=call.dialect,
            model=req.model,
            response_id=response_id,
            input_tokens=req.input_tokens,
            args_mode=_args_mode(habits, req),
            max_tokens=req.max_tokens,
            latency=spec.latency(self.speed),
            rng=rng,
            cut_text_closes=habits.cut_text_closes,
            report_reasoning=habits.counts_reasoning,
            running_usage=habits.running_usage,
        )

    @staticmethod
    def _keeps(habits: ProviderProfile, req: SimRequest, part: Part) -> bool:
        # Reasoning is sent only when asked for, and only by providers that stream it.
        return not isinstance(part, ThinkingPart) or (req.thinking and habits.sends_reasoning)

    @staticmethod
    def _fit(habits: ProviderProfile, part: Part, rng: random.Random) -> Part:
        """Give a part the provider's own habits: signatures on reasoning, compact JSON but Claude's."""
        if isinstance(part, ThinkingPart) and part.signature is None and habits.signs_reasoning:
            return ThinkingPart(part.text, base64.b64encode(rng.randbytes(48)).decode())
        if isinstance(part, ToolPart) and habits.compact_tool_json:
            return dataclasses.replace(part, compact=True)
        return part

    def _store(self, call: _Call, steps: list[Step]) -> None:
        """Keep a Responses answer for a later ``previous_response_id`` (OpenAI stores by default)."""
        options = {**self._encoder_options(call), "realism": False, "seed": None}
        response = responses_body([step.event for step in steps], **options)
        if isinstance(response.get("id"), str) and call.inputs is not None:
            self.responses.put(response["id"], call.inputs, response)

    # -- writing -----------------------------------------------------------------------------------

    def _encoder_options(self, call: _Call) -> dict[str, Any]:
        answering = Answering(call.api, call.fault.error_form, datetime.now(UTC))
        options = wire.request_dialect(call.dialect).encoder_options(call.req, answering)
        options["realism"] = self.realism and options.get("realism", True)
        options["seed"] = call.rng.randrange(1 << 30)
        return options

    async def _nonstream(self, call: _Call, steps: list[Step]) -> Response:
        record = call.record
        wait = sum(step.delay for step in steps) + (call.fault.first_byte_delay_ms or 0) / 1000.0
        if wait:
            await asyncio.sleep(wait)  # a non-streamed answer arrives when generation is done
        events = [step.event for step in steps]
        try:
            options = self._encoder_options(call)  # the creation time, what the request asked, ...
            options.pop("api", None)
            payload = nonstream_body(call.dialect, events, api=call.api, **options)
        except (MidstreamError, ImportError, AttributeError, TypeError) as exc:
            return self._error(call, 500, "server", f"the simulator cannot write {call.provider}: {exc}")
        record.tokens_generated = sum(s.tokens for s in steps)
        record.bytes_sent = len(payload)
        record.finish()
        return Response(payload, headers=self._headers(call), media_type="application/json")

    def _headers(self, call: _Call) -> dict[str, str]:
        """The provider's usual response headers (request ids), nothing taken from the request."""
        habits = profile(call.provider)
        headers = dict(habits.response_headers)
        if habits.request_id_header is not None:
            # AWS's request ids are UUIDs; the others are the id the request was given.
            uuids = habits.request_ids_are_uuids
            rid = str(uuid.UUID(int=call.rng.getrandbits(128), version=4)) if uuids else call.request_id
            headers = {habits.request_id_header: rid} | headers
        return headers | call.endpoint.headers


def _args_mode(habits: ProviderProfile, req: SimRequest) -> Callable[[str], ArgsMode]:
    """How the provider streams a tool's arguments (see :data:`~midstream.sim.script.ArgsMode`)."""
    eager = {t.name for t in req.tools if t.eager}
    streaming = habits.args_streaming

    def mode(name: str) -> ArgsMode:
        if streaming == "eager-if-asked":
            return "eager" if name in eager else "buffered"
        if streaming == "partial-if-asked":
            return "eager" if req.partial_args else "whole"
        return streaming

    return mode


def _after_prefill(parts: list[Part], prefill: str) -> list[Part]:
    """The model continues a prefilled answer: the scripted text it already wrote is not said again
    (nor the reasoning before it). A prefill the script does not start with changes nothing."""
    for i, part in enumerate(parts):
        if isinstance(part, TextPart):
            if not part.text.startswith(prefill):
                return parts
            rest = part.text[len(prefill) :]
            return ([TextPart(rest, part.phase)] if rest else []) + parts[i + 1 :]
        if not isinstance(part, ThinkingPart):
            return parts
    return parts


def _derived_ids(parts: list[Part], response_id: str | None) -> list[Part]:
    """A provider that sends no call ids (the Gemini API): give calls the ids the decoder derives, so
    none is written."""
    out: list[Part] = []
    for part in parts:
        if isinstance(part, ToolPart):
            n = sum(isinstance(p, ToolPart) for p in out)
            part = dataclasses.replace(part, id=synthetic_call_id(response_id, n))
        out.append(part)
    return out


def _stop_reason(steps: list[Step]) -> str | None:
    end = steps[-1].event if steps else None
    return getattr(end, "stop_reason", None)


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to be larger than ``limit`` bytes.

    A declared ``content-length`` over the limit is refused before reading; otherwise reading stops at
    the first byte past it, so a huge (or endless chunked) body costs at most ``limit`` bytes.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)
