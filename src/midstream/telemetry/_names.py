"""Metric and attribute names: the GenAI semantic conventions' (latest, or v1.41 behind a switch),
midstream's own under ``midstream.``, and the advised histogram buckets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from midstream.wire.profiles import PROFILES

Naming = Literal["latest", "v1.41"]

DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
"""The conventions' advice for every duration histogram (inference duration, time to first chunk, time
per output chunk, agent and tool durations), in seconds."""

TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)
"""The conventions' advice for token-count histograms."""

COUNT_BUCKETS: Final = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
"""Calls per agent run (inference calls, tool calls)."""

PROVIDER_NAMES: Final = {p.name: p.semconv_name or p.name for p in PROFILES.values()}
"""midstream's provider names -> the conventions' ``gen_ai.provider.name`` (well-known values): a view of
the profiles' :attr:`~midstream.wire.profiles.ProviderProfile.semconv_name`."""


def provider_name(provider: str) -> str:
    """``gen_ai.provider.name`` for a provider (its profile's, registered ones included)."""
    found = PROFILES.get(provider)
    return provider if found is None else found.semconv_name or found.name


@dataclass(frozen=True, slots=True)
class Names:
    """The names one naming emits. ``usage_counters``: token usage as one counter per token type
    (latest) rather than one histogram with ``gen_ai.token.type`` (v1.41)."""

    inference_duration: str
    time_to_first_chunk: str
    time_per_output_chunk: str
    usage_counters: bool


LATEST: Final = Names(
    inference_duration="gen_ai.client.inference.duration",
    time_to_first_chunk="gen_ai.client.inference.time_to_first_chunk",
    time_per_output_chunk="gen_ai.client.inference.time_per_output_chunk",
    usage_counters=True,
)
V1_41: Final = Names(
    inference_duration="gen_ai.client.operation.duration",
    time_to_first_chunk="gen_ai.client.operation.time_to_first_chunk",
    time_per_output_chunk="gen_ai.client.operation.time_per_output_chunk",
    usage_counters=False,
)
NAMINGS: Final[dict[str, Names]] = {"latest": LATEST, "v1.41": V1_41}

TOKEN_USAGE_V1_41: Final = "gen_ai.client.token.usage"
USAGE_COUNTERS: Final = {
    "input_tokens": "gen_ai.client.inference.usage.input_tokens",
    "output_tokens": "gen_ai.client.inference.usage.output_tokens",
    "cache_read_tokens": "gen_ai.client.inference.usage.cache_read.input_tokens",
    "cache_write_tokens": "gen_ai.client.inference.usage.cache_write.input_tokens",
    "reasoning_tokens": "gen_ai.client.inference.usage.reasoning.output_tokens",
}
"""``Usage`` field -> the latest conventions' token counter."""
USAGE_ATTRIBUTES: Final = {
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
    "cache_write_tokens": "gen_ai.usage.cache_write.input_tokens",
    "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens",
}
"""``Usage`` field -> the span attribute."""

INVOKE_AGENT_DURATION: Final = "gen_ai.invoke_agent.duration"
INVOKE_AGENT_INFERENCE_CALLS: Final = "gen_ai.invoke_agent.inference_calls"
INVOKE_AGENT_TOOL_CALLS: Final = "gen_ai.invoke_agent.tool_calls"
EXECUTE_TOOL_DURATION: Final = "gen_ai.execute_tool.duration"
INVOKE_WORKFLOW_DURATION: Final = "gen_ai.invoke_workflow.duration"

# midstream's own (the conventions have no name for these)
FIRST_ARG_BYTE: Final = "midstream.tool.time_to_first_arg_byte"
MAX_CHUNK_GAP: Final = "midstream.stream.max_chunk_gap"
STREAMS: Final = "midstream.streams"
RETRIES: Final = "midstream.stream.retries"
INVALID_JSON: Final = "midstream.tool.invalid_json"
INCOMPLETE_JSON: Final = "midstream.tool.incomplete_json"
FALLBACKS: Final = "midstream.agent.fallbacks"
COMPENSATIONS: Final = "midstream.agent.compensations"
RESUMES: Final = "midstream.agent.resumes"
REPLAY_LAG: Final = "midstream.relay.replay_lag"

HISTOGRAMS: Final[dict[str, tuple[str, str, tuple[float, ...]]]] = {
    # name: (unit, description, buckets)
    LATEST.inference_duration: ("s", "Duration of a streamed inference call", DURATION_BUCKETS),
    LATEST.time_to_first_chunk: ("s", "Time to the first content chunk of a response", DURATION_BUCKETS),
    LATEST.time_per_output_chunk: ("s", "Time between output chunks after the first", DURATION_BUCKETS),
    V1_41.inference_duration: ("s", "GenAI operation duration", DURATION_BUCKETS),
    V1_41.time_to_first_chunk: ("s", "Time to the first chunk of a response", DURATION_BUCKETS),
    V1_41.time_per_output_chunk: ("s", "Time between output chunks after the first", DURATION_BUCKETS),
    TOKEN_USAGE_V1_41: ("{token}", "Tokens used by a call", TOKEN_BUCKETS),
    INVOKE_AGENT_DURATION: ("s", "Duration of an agent run", DURATION_BUCKETS),
    INVOKE_AGENT_INFERENCE_CALLS: ("{call}", "Inference calls made by an agent run", COUNT_BUCKETS),
    INVOKE_AGENT_TOOL_CALLS: ("{call}", "Tool calls executed by an agent run", COUNT_BUCKETS),
    EXECUTE_TOOL_DURATION: ("s", "Duration of a tool execution", DURATION_BUCKETS),
    INVOKE_WORKFLOW_DURATION: ("s", "Duration of a workflow run", DURATION_BUCKETS),
    FIRST_ARG_BYTE: ("s", "Time from the request to a tool call's first argument byte", DURATION_BUCKETS),
    MAX_CHUNK_GAP: ("s", "Longest gap between body chunks of a stream", DURATION_BUCKETS),
    REPLAY_LAG: ("s", "Time from an event's append to its delivery to a relay reader", DURATION_BUCKETS),
}
"""Every histogram: unit, description, bucket boundaries."""

COUNTERS: Final[dict[str, tuple[str, str]]] = {
    **{name: ("{token}", f"Tokens: {field.replace('_', ' ')}") for field, name in USAGE_COUNTERS.items()},
    STREAMS: ("{stream}", "Streamed calls, by terminal state"),
    RETRIES: ("{retry}", "Attempts retried by the client before any content"),
    INVALID_JSON: ("{call}", "Tool calls whose arguments were not a JSON object"),
    INCOMPLETE_JSON: ("{call}", "Tool calls whose arguments were cut before they closed"),
    FALLBACKS: ("{fallback}", "Tools switched from eager to buffered argument streaming"),
    COMPENSATIONS: ("{effect}", "Side effects undone after a cancel"),
    RESUMES: ("{run}", "Agent runs resumed from a checkpoint"),
}
"""Every counter: unit, description."""
