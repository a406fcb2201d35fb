"""Amazon Bedrock ConverseStream request bodies and their SigV4 signature.

The body is what boto3's ``converse_stream`` sends (botocore keeps the caller's key order, so the order
here is the one the docs list: ``messages``, ``system``, ``inferenceConfig``, ``toolConfig``,
``additionalModelRequestFields``). Thinking is requested the way Claude models on Bedrock take it
(``additionalModelRequestFields.thinking``). Converse has no "none" tool choice: tools stay offered.
Signing uses botocore itself, so the signature is exactly the one boto3 computes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from midstream.client._providers._common import JSON, replays_native, split_parts, tool_input
from midstream.client.request import ChatRequest, ToolSpec, Turn
from midstream.errors import LocalError
from midstream.message import Block, Message, RedactedThinkingBlock, TextBlock, ThinkingBlock, ToolCall

DIALECT = "bedrock"
SERVICE = "bedrock"  # the SigV4 signing name of bedrock-runtime


def body(request: ChatRequest) -> JSON:
    """The JSON body for ``request`` (the model id goes in the URL, not here)."""
    out: JSON = {"messages": [m for turn in request.turns if (m := _message(turn)) is not None]}
    if request.system is not None:
        out["system"] = [{"text": request.system}]
    inference: JSON = {"maxTokens": request.max_tokens}
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    out["inferenceConfig"] = inference
    if request.tools:
        tool_config: JSON = {"tools": [_tool(spec) for spec in request.tools]}
        choice = _tool_choice(request.tool_choice)
        if choice is not None:
            tool_config["toolChoice"] = choice
        out["toolConfig"] = tool_config
    if request.thinking_budget is not None:
        thinking = {"type": "enabled", "budget_tokens": request.thinking_budget}
        out["additionalModelRequestFields"] = {"thinking": thinking}
    return out


def _tool(spec: ToolSpec) -> JSON:
    tool: JSON = {"name": spec.name}
    if spec.description:  # Bedrock rejects an empty description
        tool["description"] = spec.description
    tool["inputSchema"] = {"json": spec.input_schema}
    return {"toolSpec": tool}


def _tool_choice(choice: str | None) -> JSON | None:
    if choice is None or choice == "none":
        return None
    if choice in ("auto", "any"):
        return {choice: {}}
    return {"tool": {"name": choice}}


def _message(turn: Turn) -> JSON | None:
    if turn.message is not None:
        content = _assistant_content(turn.message)
        return {"role": "assistant", "content": content} if content else None
    results, texts = split_parts(turn.parts)
    blocks: list[JSON] = []
    for result in results:
        tool_result: JSON = {"toolUseId": result.tool_call_id, "content": [{"text": result.content}]}
        if result.is_error:
            tool_result["status"] = "error"
        blocks.append({"toolResult": tool_result})
    blocks.extend({"text": t.text} for t in texts)
    return {"role": "user", "content": blocks}


def _assistant_content(message: Message) -> list[JSON]:
    native = replays_native(message, DIALECT)
    return [b for block in message.blocks if (b := _block(block, native)) is not None]


def _block(block: Block, native: bool) -> JSON | None:
    if isinstance(block, TextBlock):
        return {"text": block.text} if block.text else None  # blank text is a validation error
    if isinstance(block, ToolCall):
        return {"toolUse": {"toolUseId": block.id, "name": block.name, "input": tool_input(block)}}
    if native and isinstance(block, ThinkingBlock) and block.signature is not None:
        reasoning = {"text": block.thinking, "signature": block.signature}
        return {"reasoningContent": {"reasoningText": reasoning}}
    if native and isinstance(block, RedactedThinkingBlock):
        return {"reasoningContent": {"redactedContent": block.data}}  # already base64, as received
    return None


def frozen_credentials(credentials: Any) -> Any:
    """botocore ``ReadOnlyCredentials`` from what the caller gave: botocore credentials, a mapping with
    ``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token``, or a tuple
    ``(access_key, secret_key[, token])``; ``None`` resolves botocore's default chain (environment,
    profile, ...), and may give ``None``."""
    from botocore.credentials import ReadOnlyCredentials  # type: ignore[import-untyped]

    if credentials is None:
        from botocore.session import Session  # type: ignore[import-untyped]

        resolved = Session().get_credentials()
        return None if resolved is None else resolved.get_frozen_credentials()
    if hasattr(credentials, "get_frozen_credentials"):
        return credentials.get_frozen_credentials()
    if isinstance(credentials, ReadOnlyCredentials):
        return credentials
    if isinstance(credentials, Mapping):
        return ReadOnlyCredentials(
            credentials["aws_access_key_id"],
            credentials["aws_secret_access_key"],
            credentials.get("aws_session_token"),
        )
    if isinstance(credentials, tuple) and len(credentials) in (2, 3):
        return ReadOnlyCredentials(*credentials, *([None] * (3 - len(credentials))))
    # Only the type is named: the value may hold a secret.
    raise LocalError(f"aws_credentials: cannot use a {type(credentials).__name__}")


def secrets_of(credentials: Any) -> tuple[str, ...]:
    """The access key id, secret key and session token of frozen ``credentials`` (those present)."""
    values = (getattr(credentials, name, None) for name in ("access_key", "secret_key", "token"))
    return tuple(value for value in values if isinstance(value, str) and value)


class _Scrub(logging.Filter):
    """Replaces the credentials midstream signed with by ``***`` in botocore's log records: at DEBUG
    botocore logs the canonical request, session token included."""

    _KEEP = 64  # the newest credentials remembered (they rotate; the set must not grow forever)

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[str, None] = {}

    def remember(self, secrets: tuple[str, ...]) -> None:
        for secret in secrets:
            if len(secret) >= 4:
                self.secrets.pop(secret, None)
                self.secrets[secret] = None
        while len(self.secrets) > self._KEEP:
            del self.secrets[next(iter(self.secrets))]

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = sorted(self.secrets, key=len, reverse=True)
        if secrets:
            text = clean = record.getMessage()
            for secret in secrets:
                clean = clean.replace(secret, "***")
            if clean != text:
                record.msg, record.args = clean, None
        return True


_SCRUB = _Scrub()
# The botocore modules that run while credentials resolve and a request is signed, and may log.
_BOTOCORE_LOGGERS = (
    "botocore",
    "botocore.auth",
    "botocore.awsrequest",
    "botocore.credentials",
    "botocore.hooks",
    "botocore.loaders",
    "botocore.session",
    "botocore.utils",
)


def scrub_botocore_logs(secrets: tuple[str, ...]) -> None:
    """Keep ``secrets`` out of every record botocore's loggers emit from now on."""
    _SCRUB.remember(secrets)
    for name in _BOTOCORE_LOGGERS:
        logger = logging.getLogger(name)
        if _SCRUB not in logger.filters:
            logger.addFilter(_SCRUB)


def sign(url: str, body: bytes, headers: dict[str, str], region: str, credentials: Any) -> dict[str, str]:
    """SigV4 headers (``X-Amz-Date``, ``Authorization``, ``X-Amz-Security-Token`` with a session token)
    for a POST of ``body`` to ``url``, computed by botocore; ``headers`` are signed too. botocore's
    log records never show the credentials (:func:`scrub_botocore_logs`)."""
    from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]

    scrub_botocore_logs(secrets_of(credentials))
    aws = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, SERVICE, region).add_auth(aws)
    return {name: str(value) for name, value in aws.headers.items()}
