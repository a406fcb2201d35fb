"""One record per provider: what the client, the simulator and the command line know about it.

A :class:`ProviderProfile` holds a provider's facts as data: its wire dialect, where its key and base
URL come from, its default model, the media type of its stream, the shape of its ids and response
headers, and the habits its streams have (how tool arguments arrive, whether reasoning is signed, ...).
The client builds requests from it, the simulator answers like the provider from it, and the command
line lists and defaults from it; the code that differs per provider (decoder, encoder, request body)
lives in the dialect's modules. :data:`PROFILES` is the registry, in the order the providers are listed
everywhere.

>>> from midstream.wire.profiles import profile
>>> profile("openai-compatible").dialect
'openai-chat'
>>> profile("anthropic").env_key
'ANTHROPIC_API_KEY'
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from midstream.errors import LocalError

__all__ = ["PROFILES", "ArgsStreaming", "ProviderProfile", "UnknownProvider", "profile"]

ArgsStreaming = Literal["eager", "eager-if-asked", "partial-if-asked", "whole"]
"""How a provider streams a tool call's arguments: ``eager`` in small fragments as generated;
``eager-if-asked`` buffered into a few large fragments unless the tool asks for eager streaming
(Anthropic's fine-grained tool streaming); ``partial-if-asked`` whole unless the request asks for
partial arguments (Vertex AI's ``streamFunctionCallArguments``); ``whole`` in one piece."""


class UnknownProvider(LocalError, ValueError):
    """A provider name midstream does not know; the message lists the known ones."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderProfile:
    """What midstream knows about one provider, as data (see the module docstring)."""

    name: str
    """The name users pass (``provider=``, ``--provider``)."""
    dialect: str
    """The wire dialect of its answers (:func:`midstream.wire.decoder`)."""
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
    sse_headers: dict[str, str] = field(default_factory=dict)
    """Headers it adds when it streams server-sent events on request (Gemini's ``alt=sse``)."""
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
    always_finishes: bool = True
    """Every complete answer says why it stopped (a Chat ``finish_reason`` before ``[DONE]``), so a stream
    without that was cut short. Some OpenAI-compatible servers (Snowflake Cortex) never send one."""


_OPENAI_CHAT = ProviderProfile(
    name="openai-chat",
    dialect="openai-chat",
    env_key="OPENAI_API_KEY",
    base_url_env="OPENAI_BASE_URL",  # with the API version: .../v1
    default_base_url="https://api.openai.com/v1",
    default_model="gpt-4.1-mini",
    media_type="text/event-stream; charset=utf-8",
    response_id_prefix="chatcmpl-",
    tool_id_prefix="call_",
    id_length=24,
    request_id_header="x-request-id",
    response_headers={"openai-processing-ms": "1"},
    sends_reasoning=False,
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
            response_id_prefix="msg_01",
            tool_id_prefix="toolu_01",
            id_length=22,
            request_id_header="request-id",
            args_streaming="eager-if-asked",
            signs_reasoning=True,
            compact_tool_json=False,
            cut_text_closes=True,
        ),
        _OPENAI_CHAT,
        replace(
            _OPENAI_CHAT,
            name="openai-responses",
            dialect="openai-responses",
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
            response_id_prefix="",
            tool_id_prefix="call_",
            id_length=22,
            sse_headers={"content-disposition": "attachment"},
            calls_have_ids=False,
            args_streaming="partial-if-asked",
            counts_reasoning=True,
            running_usage=True,
        ),
        ProviderProfile(
            name="bedrock",
            dialect="bedrock",
            env_key="AWS_BEARER_TOKEN_BEDROCK",  # a Bedrock API key; without it, AWS credentials
            base_url_env="AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
            default_base_url="https://bedrock-runtime.{region}.amazonaws.com",
            default_model="anthropic.claude-3-5-sonnet-20240620-v1:0",
            media_type="application/vnd.amazon.eventstream",
            response_id_prefix=None,
            tool_id_prefix="tooluse_",
            id_length=22,
            request_id_header="x-amzn-requestid",
            request_ids_are_uuids=True,
            signs_reasoning=True,
            compact_tool_json=False,
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
            response_id_prefix=None,
            tool_id_prefix="call_",
            id_length=8,
            args_streaming="whole",
        ),
        ProviderProfile(
            name="openai-compatible",
            dialect="openai-chat",
            # Deliberately not OPENAI_API_KEY nor OPENAI_BASE_URL: an OpenAI key must not leak elsewhere.
            env_key="OPENAI_COMPATIBLE_API_KEY",
            key_optional=True,
            default_base_url="http://localhost:8000/v1",  # vLLM's default
            media_type="text/event-stream; charset=utf-8",
            response_id_prefix="chatcmpl-",
            tool_id_prefix="call_",
            id_length=24,
            sends_reasoning=False,
            always_finishes=False,
        ),
    )
}
"""Every provider midstream speaks, by name."""


def profile(name: str) -> ProviderProfile:
    """The profile of provider ``name``; :class:`UnknownProvider` (listing the known names) if none."""
    found = PROFILES.get(name)
    if found is None:
        raise UnknownProvider(f"unknown provider {name!r}; known: {', '.join(PROFILES)}")
    return found
