"""One record per provider: what the client, the simulator and the command line know about it.

A :class:`ProviderProfile` holds a provider's facts as data: its wire dialect, its endpoints (paths,
streamed or not), how a request is sent (fixed headers, where the key goes, JSON spacing, the options of
the dialect's body writer), where its key and base URL come from, its default model, the media type of
its stream, the shape of its ids and response headers, and the habits its streams have (how tool
arguments arrive, whether reasoning is signed, ...). The client builds requests from it, the simulator
serves its endpoints and answers like the provider from it, and the command line lists and defaults
from it; the code that differs per dialect (decoder, encoder with the non-streamed body, request body
writer and reader) lives in the dialect's module, ``midstream.wire.<dialect>`` (``-`` written ``_``).
:data:`PROFILES` is the registry, in the order the providers are listed everywhere; a provider added to
it (:func:`register`) is built by the client and served by a simulator made after that, with no other
change.

Adding a provider: one that speaks a dialect midstream has (another OpenAI-compatible server) is one
profile, added to :data:`PROFILES` here or with :func:`register`. One with a dialect of its own is that
plus one dialect module (midstream's own are ``midstream.wire.<dialect>``, with their encoder and request
side in ``_<dialect>_encoder.py`` and ``_<dialect>_request.py``), named by the profile's
:attr:`~ProviderProfile.dialect_module` when it lives elsewhere. The module defines:

* ``DECODER``: a :class:`~midstream.wire.DialectDecoder` class, the stream's bytes to events;
* ``ENCODER``: an :class:`~midstream.wire.Encoder` class, events to the stream's bytes (the simulator
  streams with it);
* ``NONSTREAM``: ``(message, events, *, api, realism, seed) -> dict``, the answer when not streamed;
* ``REQUEST``: a :class:`~midstream.wire.request.RequestDialect`: the request body written from a
  :class:`~midstream.request.ChatRequest`, read, checked and refused as the provider does, and its
  error bodies.

Nothing else changes: :func:`midstream.client.providers.build_request` builds its requests from the
profile, the client decodes its answers, and the simulator serves its endpoints.

>>> from midstream.wire.profiles import profile
>>> profile("openai-compatible").dialect
'openai-chat'
>>> profile("anthropic").env_key
'ANTHROPIC_API_KEY'
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from midstream.errors import LocalError

__all__ = [
    "PROFILES",
    "ArgsStreaming",
    "Endpoint",
    "ProviderProfile",
    "UnknownProvider",
    "dialect_module",
    "profile",
    "register",
]

ArgsStreaming = Literal["eager", "eager-if-asked", "partial-if-asked", "whole"]
"""How a provider streams a tool call's arguments: ``eager`` in small fragments as generated;
``eager-if-asked`` buffered into a few large fragments unless the tool asks for eager streaming
(Anthropic's fine-grained tool streaming); ``partial-if-asked`` whole unless the request asks for
partial arguments (Vertex AI's ``streamFunctionCallArguments``); ``whole`` in one piece."""


class UnknownProvider(LocalError, ValueError):
    """A provider name midstream does not know; the message lists the known ones."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One of a provider's generation endpoints (``POST``): where the client sends a request, and what
    the simulator serves.

    ``path`` is a route pattern: ``{model}`` (``{model:path}`` where the model may hold ``/``) is the
    model, written in by the dialect's :attr:`~midstream.wire.request.RequestDialect.path_model`; any
    other ``{name}`` is a part the simulator accepts whatever it is (the client sends to endpoints with
    ``{model}`` only).
    """

    path: str
    stream: bool | None = None
    """``True``: it streams; ``False``: it answers whole; ``None``: the body's ``stream`` says."""
    api: str | None = None
    """The variant of the dialect it speaks, handed to the dialect's request reader and encoder
    (Ollama's ``generate``, Gemini's ``sse`` or ``json-array`` framing)."""
    query: dict[str, str] = field(default_factory=dict)
    """Query parameters that pick this endpoint among those of the same path (Gemini's ``alt=sse``)."""
    media_type: str | None = None
    """Its streamed answer's ``content-type``, when not the profile's :attr:`ProviderProfile.media_type`."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers it adds to every answer (Gemini's ``content-disposition`` on ``alt=sse``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderProfile:
    """What midstream knows about one provider, as data (see the module docstring)."""

    name: str
    """The name users pass (``provider=``, ``--provider``)."""
    dialect: str
    """The wire dialect of its answers (:func:`midstream.wire.decoder`)."""
    dialect_module: str | None = None
    """The module defining its dialect, when that is not one of midstream's (``midstream.wire.<dialect>``):
    ``DECODER``, ``ENCODER``, ``NONSTREAM`` and ``REQUEST``, as midstream's dialect modules define them."""
    env_key: str
    """The environment variable its key is read from when no ``api_key`` is given."""
    key_optional: bool = False
    """A missing key is fine anywhere (a local server), not only on loopback."""
    base_url_env: str | None = None
    """The environment variable naming its base URL, as its own SDK reads it (``None``: none)."""
    default_base_url: str
    """The base URL when neither ``base_url`` nor :attr:`base_url_env` gives one."""
    default_model: str | None = None
    """The model the command line asks for when ``--model`` is not given (``None``: it must be)."""
    media_type: str
    """The ``content-type`` of its streamed answer."""
    endpoints: tuple[Endpoint, ...]
    """Its generation endpoints; the first that streams (or says so in the body), and the first that
    answers whole, are those the client sends to."""
    base_path: str = ""
    """The path its SDK's base URLs end with (OpenAI's API version, ``/v1``): the endpoint paths start
    with it, and a base URL with no path at all gets it (so a server root, such as the simulator's, works)."""
    base_url_env_host: bool = False
    """Its base URL variable may name a bare ``host[:port]`` (``OLLAMA_HOST``), whose port is then the
    default base URL's."""
    env_key_alternates: tuple[str, ...] = ()
    """Other variables its key is read from, in order, when :attr:`env_key` is not set."""
    request_headers: dict[str, str] = field(
        default_factory=lambda: {"accept": "application/json", "content-type": "application/json"}
    )
    """The fixed headers of its requests (the API version where it goes in a header)."""
    key_header: str = "authorization"
    """The request header its key goes in."""
    key_prefix: str = "Bearer "
    """What comes before the key in :attr:`key_header`."""
    sigv4_service: str | None = None
    """With no key, its requests are signed with AWS SigV4 for this service, and its base URL may hold a
    ``{region}``; ``None``: never signed."""
    spaced_json: bool = False
    """Its SDK writes request bodies as ``json.dumps`` does by default (``", "``, ``": "``, ASCII), not
    compact with raw UTF-8."""
    body_options: dict[str, Any] = field(default_factory=dict)
    """Keyword options for its dialect's body writer (an OpenAI-compatible server's ``compatible``)."""
    malformed: bytes = b"data: {not json\n\n"
    """Bytes that break its stream's framing, which the simulator sends for a malformed-frame fault."""
    response_id_prefix: str | None
    """How its response ids start (``None``: its responses carry no id)."""
    tool_id_prefix: str
    """How its tool call ids start."""
    id_length: int
    """Random characters after an id's prefix."""
    request_id_header: str | None = None
    """The response header carrying its request id."""
    response_headers: dict[str, str] = field(default_factory=dict)
    """Other headers it sends with every answer."""
    request_ids_are_uuids: bool = False
    """Its request ids are random UUIDs (AWS's), not ids of its own shape."""
    calls_have_ids: bool = True
    """Its tool calls carry ids (the Gemini API's do not: clients derive them)."""
    args_streaming: ArgsStreaming = "eager"
    """How it streams tool arguments (:data:`ArgsStreaming`)."""
    sends_reasoning: bool = True
    """It streams reasoning (thinking) text when asked for it."""
    signs_reasoning: bool = False
    """Its reasoning blocks carry a signature to send back."""
    counts_reasoning: bool = False
    """Its usage reports reasoning tokens separately."""
    compact_tool_json: bool = True
    """Its tool arguments are compact JSON (no spaces after ``:`` and ``,``)."""
    cut_text_closes: bool = False
    """A text block cut by the token limit is still closed with a stop event."""
    running_usage: bool = False
    """Every chunk carries the usage so far, not only the last one."""
    continues_prefill: bool = False
    """A trailing assistant turn in the request is continued (a prefill), not answered anew, so a cut
    answer can be resumed where it stopped."""
    semconv_name: str | None = None
    """Its ``gen_ai.provider.name`` in OpenTelemetry's conventions (``None``: its own name)."""
    always_finishes: bool = True
    """Every complete answer says why it stopped (a Chat ``finish_reason`` before ``[DONE]``), so a stream
    without that was cut short. Some OpenAI-compatible servers (Snowflake Cortex) never send one."""


def _gemini_endpoints(models: str) -> tuple[Endpoint, ...]:
    """Gemini's methods on a model path: SSE on ``alt=sse``, else one JSON array; or one whole answer."""
    return (
        Endpoint(
            path=f"{models}:streamGenerateContent",
            stream=True,
            api="sse",
            query={"alt": "sse"},
            headers={"content-disposition": "attachment"},
        ),
        Endpoint(
            path=f"{models}:streamGenerateContent",
            stream=True,
            api="json-array",
            media_type="application/json",
        ),
        Endpoint(path=f"{models}:generateContent", stream=False),
    )


_OPENAI_CHAT = ProviderProfile(
    name="openai-chat",
    dialect="openai-chat",
    env_key="OPENAI_API_KEY",
    base_url_env="OPENAI_BASE_URL",  # with the API version: .../v1
    default_base_url="https://api.openai.com/v1",
    default_model="gpt-4.1-mini",
    media_type="text/event-stream; charset=utf-8",
    endpoints=(Endpoint(path="/v1/chat/completions"),),
    base_path="/v1",
    response_id_prefix="chatcmpl-",
    tool_id_prefix="call_",
    id_length=24,
    request_id_header="x-request-id",
    response_headers={"openai-processing-ms": "1"},
    sends_reasoning=False,
    semconv_name="openai",
)

PROFILES: dict[str, ProviderProfile] = {
    p.name: p
    for p in (
        ProviderProfile(
            name="anthropic",
            dialect="anthropic",
            env_key="ANTHROPIC_API_KEY",
            base_url_env="ANTHROPIC_BASE_URL",
            default_base_url="https://api.anthropic.com",
            default_model="claude-sonnet-4-5",
            media_type="text/event-stream; charset=utf-8",
            endpoints=(Endpoint(path="/v1/messages"),),
            request_headers={
                "accept": "application/json",
                "content-type": "application/json",
                "anthropic-version": "2026-10-21",  # what anthropic 2.x sends
            },
            malformed=b"event: content_block_delta\ndata: {not json\n\n",
            response_id_prefix="msg_01",
            tool_id_prefix="toolu_01",
            id_length=22,
            request_id_header="request-id",
            args_streaming="eager-if-asked",
            signs_reasoning=True,
            compact_tool_json=False,
            cut_text_closes=True,
            continues_prefill=True,
        ),
        _OPENAI_CHAT,
        replace(
            _OPENAI_CHAT,
            name="openai-responses",
            dialect="openai-responses",
            endpoints=(Endpoint(path="/v1/responses"),),
            malformed=b"event: response.output_text.delta\ndata: {not json\n\n",
            response_id_prefix="resp_",
            sends_reasoning=True,
            counts_reasoning=True,
        ),
        ProviderProfile(
            name="gemini",
            dialect="gemini",
            env_key="GEMINI_API_KEY",  # GOOGLE_API_KEY is read too, as google-genai does
            base_url_env="GOOGLE_GEMINI_BASE_URL",
            default_base_url="https://generativelanguage.googleapis.com",
            default_model="gemini-2.5-flash",
            media_type="text/event-stream",
            # The client's (google-genai's) first: the Gemini API, then v1beta and Vertex AI's two forms.
            endpoints=tuple(
                endpoint
                for models in (
                    "/v1/models/{model}",
                    "/v1beta/models/{model}",
                    "/{version}/projects/{project}/locations/{location}/publishers/google/models/{model}",
                    "/{version}/publishers/google/models/{model}",
                )
                for endpoint in _gemini_endpoints(models)
            ),
            env_key_alternates=("GOOGLE_API_KEY",),
            request_headers={"content-type": "application/json"},
            key_header="x-goog-api-key",
            key_prefix="",
            spaced_json=True,
            malformed=b"data: {not json\r\n\r\n",
            response_id_prefix="",
            tool_id_prefix="call_",
            id_length=22,
            calls_have_ids=False,
            args_streaming="partial-if-asked",
            counts_reasoning=True,
            running_usage=True,
            semconv_name="gcp.gemini",
        ),
        ProviderProfile(
            name="bedrock",
            dialect="bedrock",
            env_key="AWS_BEARER_TOKEN_BEDROCK",  # a Bedrock API key; without it, AWS credentials
            base_url_env="AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
            default_base_url="https://bedrock-runtime.{region}.amazonaws.com",
            default_model="anthropic.claude-3-5-sonnet-20240620-v1:0",
            media_type="application/vnd.amazon.eventstream",
            endpoints=(
                Endpoint(path="/model/{model:path}/converse-stream", stream=True),
                Endpoint(path="/model/{model:path}/converse", stream=False),
            ),
            request_headers={"content-type": "application/json"},
            sigv4_service="bedrock",  # bedrock-runtime's signing name
            spaced_json=True,
            # A 32-byte frame whose prelude CRC is wrong.
            malformed=b"\x00\x00\x00\x20\x00\x00\x00\x00garbage-frame-with-bad-crc!!",
            response_id_prefix=None,
            tool_id_prefix="tooluse_",
            id_length=22,
            request_id_header="x-amzn-requestid",
            request_ids_are_uuids=True,
            signs_reasoning=True,
            compact_tool_json=False,
            semconv_name="aws.bedrock",
        ),
        ProviderProfile(
            name="ollama",
            dialect="ollama",
            env_key="OLLAMA_API_KEY",
            key_optional=True,
            base_url_env="OLLAMA_HOST",  # host[:port] or a URL, as the ollama client reads it
            default_base_url="http://localhost:11434",
            default_model="llama3.2",
            media_type="application/x-ndjson",
            endpoints=(
                Endpoint(path="/api/chat", api="chat"),
                Endpoint(path="/api/generate", api="generate"),
            ),
            base_url_env_host=True,
            malformed=b'{"model": not json\n',
            response_id_prefix=None,
            tool_id_prefix="call_",
            id_length=8,
            args_streaming="whole",
        ),
        replace(
            _OPENAI_CHAT,
            name="openai-compatible",
            # Deliberately not OPENAI_API_KEY nor OPENAI_BASE_URL: an OpenAI key must not leak elsewhere.
            env_key="OPENAI_COMPATIBLE_API_KEY",
            key_optional=True,
            base_url_env=None,
            default_base_url="http://localhost:8000/v1",  # vLLM's default
            default_model=None,
            request_id_header=None,
            response_headers={},
            body_options={"compatible": True},  # max_tokens, no reasoning_effort
            always_finishes=False,
        ),
    )
}
"""Every provider midstream speaks, by name."""


def register(provider: ProviderProfile) -> None:
    """Add ``provider`` to :data:`PROFILES` (or replace the profile of that name): the client builds its
    requests, and a simulator made after this serves its endpoints.

    Its dialect is one of midstream's, or one defined in its :attr:`~ProviderProfile.dialect_module`.
    """
    PROFILES[provider.name] = provider


def dialect_module(dialect: str) -> str:
    """The module that defines ``dialect``: the ``dialect_module`` of a profile speaking it, else
    midstream's own, ``midstream.wire.<dialect>`` (``-`` written ``_``)."""
    for p in PROFILES.values():
        if p.dialect == dialect and p.dialect_module is not None:
            return p.dialect_module
    return "midstream.wire." + dialect.replace("-", "_")


def profile(name: str) -> ProviderProfile:
    """The profile of provider ``name``; :class:`UnknownProvider` (listing the known names) if none."""
    found = PROFILES.get(name)
    if found is None:
        raise UnknownProvider(f"unknown provider {name!r}; known: {', '.join(PROFILES)}")
    return found
