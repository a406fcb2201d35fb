"""Client protocols computed from a run's log: the AI SDK UI Message Stream and AG-UI.

Each adapter is a pure, deterministic translator of the log's payloads (``feed(payload) -> chunks``,
``close()``), so serving a reader that reconnects is replay + skip (:func:`replay`, :func:`areplay`):

* :mod:`midstream.relay.adapters.aisdk` -- :class:`UIMessageStream` (``useChat``, resume by
  ``GET /api/chat/{chatId}/stream``) and :func:`parse_chat_request`;
* :mod:`midstream.relay.adapters.agui` -- :class:`AGUIEvents` and :func:`parse_run_agent_input`.
"""

from midstream.relay.adapters._replay import (
    PING,
    Chunk,
    Entry,
    Translator,
    areplay,
    parse_cursor,
    replay,
    sse_body,
    sse_event,
)
from midstream.relay.adapters.agui import AGUIEvents, RunAgentInput, RunAgentInputError, parse_run_agent_input
from midstream.relay.adapters.aisdk import (
    SSE_DONE,
    UI_MESSAGE_STREAM_HEADER,
    ChatRequestBody,
    ChatRequestError,
    UIMessageStream,
    parse_chat_request,
)

__all__ = [
    "PING",
    "SSE_DONE",
    "UI_MESSAGE_STREAM_HEADER",
    "AGUIEvents",
    "ChatRequestBody",
    "ChatRequestError",
    "Chunk",
    "Entry",
    "RunAgentInput",
    "RunAgentInputError",
    "Translator",
    "UIMessageStream",
    "areplay",
    "parse_chat_request",
    "parse_cursor",
    "parse_run_agent_input",
    "replay",
    "sse_body",
    "sse_event",
]
