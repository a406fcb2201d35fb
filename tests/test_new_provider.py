"""A provider is one dialect module plus one profile: a provider midstream has never heard of, with a
dialect defined here, is built by the client and served by the simulator with no edit anywhere else.

The dialect, ``toy-lines``, streams one JSON object per line: ``{"type": "start", ...}``, one
``{"type": "text", "text": ...}`` per delta, ``{"type": "end", "stop": ..., "usage": ...}``. Its module
(this test module) defines what every dialect module defines: ``DECODER``, ``ENCODER``, ``NONSTREAM`` and
``REQUEST``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx2
import pytest

import midstream
from midstream import wire
from midstream.client.providers import build_request
from midstream.events import (
    BlockStart,
    BlockStop,
    Event,
    ResponseEnd,
    ResponseStart,
    StreamError,
    TextDelta,
)
from midstream.message import Message, TextBlock, Usage
from midstream.request import ChatRequest
from midstream.sim import running
from midstream.wire import Encoder
from midstream.wire.profiles import PROFILES, Endpoint, ProviderProfile, register
from midstream.wire.request import RequestDialect, RequestRejected, RequestView, text_of

DIALECT = "toy-lines"


class ToyDecoder:
    """``toy-lines`` bytes -> events."""

    def __init__(self, **_: Any) -> None:
        self._buffer = b""
        self._open = False

    def feed(self, data: bytes, out: list[Event] | None = None) -> list[Event]:
        out = [] if out is None else out
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._line(json.loads(line), out)
        return out

    def _line(self, obj: dict[str, Any], out: list[Event]) -> None:
        if obj["type"] == "start":
            out.append(ResponseStart(provider=DIALECT, model=obj["model"], id=obj["id"]))
        elif obj["type"] == "text":
            if not self._open:
                out.append(BlockStart(index=0, type="text", raw_type="text"))
                self._open = True
            out.append(TextDelta(0, obj["text"]))
        elif obj["type"] == "end":
            if self._open:
                out.append(BlockStop(0))
            usage = Usage(input_tokens=obj["usage"]["in"], output_tokens=obj["usage"]["out"])
            out.append(
                ResponseEnd(
                    stop_reason="end_turn", raw_stop_reason=obj["stop"], terminal="completed", usage=usage
                )
            )

    def close(self) -> list[Event]:
        return []


class ToyEncoder(Encoder):
    """Events -> ``toy-lines`` bytes (what the simulator writes)."""

    dialect = DIALECT

    def __init__(self, **_: Any) -> None:
        pass

    def encode(self, event: Event) -> bytes:
        self._starting(event)
        if isinstance(event, ResponseStart):
            return _line({"type": "start", "id": event.id, "model": event.model})
        if isinstance(event, TextDelta):
            return _line({"type": "text", "text": event.text})
        if isinstance(event, ResponseEnd):
            usage = {"in": event.usage.input_tokens or 0, "out": event.usage.output_tokens or 0}
            return _line({"type": "end", "stop": event.raw_stop_reason or "done", "usage": usage})
        if isinstance(event, StreamError):
            return _line({"type": "error", "message": event.message})
        return b""


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def whole_body(message: Message, events: Sequence[Event] = (), **_: Any) -> dict[str, Any]:
    """The answer not streamed: one object."""
    return {"id": message.id, "text": message.text, "out": message.usage.output_tokens}


def write(request: ChatRequest, *, stream: bool, shout: bool = False) -> dict[str, Any]:
    prompts = [part.text for turn in request.turns for part in turn.parts if hasattr(part, "text")]
    body: dict[str, Any] = {"model": request.model, "prompt": "\n".join(prompts), "stream": stream}
    return body | ({"shout": True} if shout else {})


SEEN_HEADERS: list[dict[str, str]] = []


def read(body: dict[str, Any], headers: Mapping[str, str]) -> RequestView:
    SEEN_HEADERS.append(dict(headers))
    return RequestView(
        model=str(body.get("model")),
        stream=bool(body.get("stream")),
        last_user=text_of(body.get("prompt")),
        conversation=body.get("prompt"),
    )


def check(body: dict[str, Any], view: RequestView) -> None:
    if not isinstance(body.get("prompt"), str):
        raise RequestRejected("prompt: a string is required")


def error_body(
    status: int, kind: str, message: str, request_id: str, retry_delay: float | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    return {"toy_error": {"kind": kind, "message": message}}, {}


def stream_error(kind: str, request_id: str, retry_delay: float | None = None) -> StreamError:
    return StreamError(error_kind="server", message=kind, retryable=True, raw=None)


DECODER = ToyDecoder
ENCODER = ToyEncoder
NONSTREAM = whole_body
REQUEST = RequestDialect(
    write=write,
    read=read,
    check=check,
    error_body=error_body,
    stream_error=stream_error,
    headers_read=("x-toy-mode",),
)

TOY = ProviderProfile(
    name="toy",
    dialect=DIALECT,
    dialect_module=__name__,
    env_key="TOY_API_KEY",
    default_base_url="https://api.toy.example",
    media_type="application/x-ndjson",
    endpoints=(
        Endpoint(path="/toy/v2/models/{model}:stream", stream=True),
        Endpoint(path="/toy/v2/models/{model}:answer", stream=False),
    ),
    request_headers={"content-type": "application/json", "toy-version": "2"},
    key_header="x-toy-key",
    key_prefix="",
    body_options={"shout": True},
    response_id_prefix="toy_",
    tool_id_prefix="tc_",
    id_length=6,
    sends_reasoning=False,
)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderProfile]:
    """The toy provider registered for one test (the registry is restored after it)."""
    monkeypatch.setitem(PROFILES, "toy", TOY)  # restored after the test
    monkeypatch.delenv("TOY_API_KEY", raising=False)
    register(TOY)
    yield TOY


def test_the_client_builds_a_new_providers_request_from_its_profile(toy: ProviderProfile) -> None:
    request = ChatRequest.create("toy-1/large", "Hello")
    built = build_request("toy", request, api_key="k-123", base_url="https://toy.example/")
    assert built.url == "https://toy.example/toy/v2/models/toy-1%2Flarge:stream"
    assert built.headers == {"content-type": "application/json", "toy-version": "2", "x-toy-key": "k-123"}
    assert json.loads(built.body) == {
        "model": "toy-1/large",
        "prompt": "Hello",
        "stream": True,
        "shout": True,
    }
    assert built.dialect == DIALECT
    whole = build_request("toy", request, api_key="k-123", base_url=None, stream=False)
    assert whole.url == "https://api.toy.example/toy/v2/models/toy-1%2Flarge:answer"
    with pytest.raises(midstream.MissingCredentials, match="TOY_API_KEY"):
        build_request("toy", request, api_key=None, base_url=None)


def test_the_simulator_serves_a_new_provider_and_the_client_reads_it(toy: ProviderProfile) -> None:
    with running(speed=0) as sim:
        with midstream.Client("toy", base_url=sim) as client, client.stream("Hello", model="toy-1") as stream:
            message = stream.final()
        with httpx2.Client() as http:
            request = build_request("toy", ChatRequest.create("toy-1", "Hello"), api_key=None, base_url=sim)
            whole = build_request(
                "toy", ChatRequest.create("toy-1", "Hello"), api_key="k-123", base_url=sim, stream=False
            )
            SEEN_HEADERS.clear()
            loud = whole.headers | {"x-toy-mode": "loud"}
            answer = http.post(whole.url, content=whole.body, headers=loud).json()
            refused = http.post(request.url, json={"model": "toy-1"})
        records = sim.requests()
    assert message.provider == DIALECT and message.terminal == "completed"
    assert message.text and message.id is not None and message.id.startswith("toy_")
    assert answer["text"] and answer["id"].startswith("toy_")
    assert SEEN_HEADERS[0] == {"x-toy-mode": "loud"}  # what its reader reads; the key stays behind
    assert refused.status_code == 400
    assert refused.json() == {
        "toy_error": {"kind": "invalid_request", "message": "prompt: a string is required"}
    }
    assert [(r["provider"], r["path"], r["stream"]) for r in records] == [
        ("toy", "/toy/v2/models/toy-1:stream", True),
        ("toy", "/toy/v2/models/toy-1:answer", False),
        ("toy", "/toy/v2/models/toy-1:stream", True),
    ]


def test_a_new_providers_habits_reach_the_agent_and_telemetry(
    toy: ProviderProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Continuing a prefill and the telemetry name are profile facts too, not tables of their own."""
    from midstream.agent._recovery import can_prefill
    from midstream.telemetry._names import provider_name

    cut = Message(provider=DIALECT, blocks=(TextBlock(text="Rivers begin"),))
    assert not can_prefill("toy", cut)
    assert provider_name("toy") == "toy"
    monkeypatch.setitem(
        PROFILES, "toy", dataclasses.replace(TOY, continues_prefill=True, semconv_name="toy.ai")
    )
    assert can_prefill("toy", cut)
    assert provider_name("toy") == "toy.ai"
    assert can_prefill("anthropic", cut) and not can_prefill("openai-chat", cut)
    assert provider_name("gemini") == "gcp.gemini"


def test_a_new_dialect_is_found_through_its_profile(toy: ProviderProfile) -> None:
    assert wire.request_dialect(DIALECT) is REQUEST
    events = [ResponseStart(provider=DIALECT, model="m", id="toy_1"), ResponseEnd(terminal="completed")]
    decoder = wire.decoder(DIALECT)
    assert decoder.feed(wire.encoder(DIALECT).encode_all(events))[0] == events[0]
    with pytest.raises(midstream.UnknownDialect):
        wire.decoder("no-such-dialect")


def test_a_registered_provider_is_accepted_by_the_relay_and_the_command_line(toy: ProviderProfile) -> None:
    """The relay's run requests and ``--provider`` read the registry when they check, not a copy."""
    from midstream.cli._conventions import check_provider
    from midstream.relay.runner import RunRequest

    assert RunRequest(prompt="hi", provider="toy").provider == "toy"
    assert check_provider("toy") == "toy"
    with pytest.raises(ValueError, match="unknown provider 'nope'"):
        RunRequest(prompt="hi", provider="nope")
