"""Checkpoints: the state of an agent run at its last clean boundary, saved as JSON and resumed.

A clean boundary is a point where nothing is in flight: every assistant response in the conversation
ended ``completed`` (partial output is never persisted, see the design's rule 3). A
:class:`Checkpoint` holds the conversation turns (user text, tool results, assistant Messages, through
:mod:`midstream.agent.serialize`, so nothing is lost), the loop's iteration number, the ids of the
tool calls already executed (a resumed run must not execute them again), optionally the request
template (model, system prompt, tools, budgets) and free JSON ``metadata`` for the loop.

The file is written atomically (a temporary file in the same directory, then a rename), so a crash
while saving leaves the previous checkpoint intact.

Example::

    checkpoint = Checkpoint(turns=request.turns, iteration=3, executed_call_ids=("toolu_1",))
    checkpoint.save("run.checkpoint.json")
    resumed = Checkpoint.load("run.checkpoint.json")
    resumed.pending_tool_calls        # calls of the last response that have no result yet
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midstream.agent.serialize import (
    SerializeError,
    request_from_dict,
    request_to_dict,
    turn_from_dict,
    turn_to_dict,
)
from midstream.client.request import ChatRequest, ToolResult, Turn
from midstream.errors import LocalError
from midstream.message import ToolCall

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "CheckpointError", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_VERSION = 1


class CheckpointError(LocalError, ValueError):
    """A checkpoint that cannot be made (partial output), written, read or understood."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The run state at a clean boundary. Creating one with a partial assistant Message raises
    :class:`CheckpointError`: partial output is never persisted.

    ``request`` is the template of the run's requests; its own turns are not saved (``turns`` are the
    conversation), and on load it gets ``turns``. ``metadata`` must be JSON-serializable.
    """

    turns: tuple[Turn, ...]
    iteration: int = 0
    executed_call_ids: tuple[str, ...] = ()
    session_id: str | None = None
    request: ChatRequest | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created: float = 0.0

    def __post_init__(self) -> None:
        for i, turn in enumerate(self.turns):
            message = turn.message
            if message is not None and message.partial:
                raise CheckpointError(
                    f"turn {i} is a {message.terminal} response: a checkpoint holds only complete output"
                )
        if self.iteration < 0:
            raise CheckpointError("iteration cannot be negative")

    @property
    def pending_tool_calls(self) -> list[ToolCall]:
        """Tool calls of the last assistant response with no result in a later turn and not executed."""
        for i in range(len(self.turns) - 1, -1, -1):
            message = self.turns[i].message
            if message is None:
                continue
            answered = {
                part.tool_call_id
                for turn in self.turns[i + 1 :]
                for part in turn.parts
                if isinstance(part, ToolResult)
            }
            done = answered | set(self.executed_call_ids)
            return [call for call in message.tool_calls if call.id not in done]
        return []

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (with a ``version``)."""
        return {
            "type": "checkpoint",
            "version": CHECKPOINT_VERSION,
            "created": self.created,
            "session_id": self.session_id,
            "iteration": self.iteration,
            "executed_call_ids": list(self.executed_call_ids),
            "turns": [turn_to_dict(t) for t in self.turns],
            "request": None if self.request is None else request_to_dict(self.request, turns=False),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """The checkpoint of :meth:`to_dict`; raises :class:`CheckpointError` on anything else."""
        if not isinstance(data, Mapping) or data.get("type") != "checkpoint":
            raise CheckpointError("not a checkpoint document")
        if data.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(f"unsupported checkpoint version {data.get('version')!r}")
        try:
            turns = tuple(turn_from_dict(t) for t in data["turns"])
            template = data.get("request")
            request = None if template is None else request_from_dict(template, turns=turns)
            ids = data.get("executed_call_ids", [])
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise CheckpointError("executed_call_ids must be a list of strings")
            return cls(
                turns=turns,
                iteration=int(data.get("iteration", 0)),
                executed_call_ids=tuple(ids),
                session_id=data.get("session_id"),
                request=request,
                metadata=dict(data.get("metadata") or {}),
                created=float(data.get("created", 0.0)),
            )
        except (SerializeError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"bad checkpoint: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the checkpoint to ``path`` atomically; returns the path. ``created`` is set to now
        when it is 0."""
        document = self.to_dict()
        if not document["created"]:
            document["created"] = time.time()
        try:
            text = json.dumps(document, ensure_ascii=False, indent=1)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"the checkpoint is not JSON-serializable: {exc}") from None
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, target)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Read a checkpoint file; :class:`CheckpointError` names the file when it cannot."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: cannot read the checkpoint: {exc}") from None
        try:
            return cls.from_dict(data)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> Path:
    """``checkpoint.save(path)``."""
    return checkpoint.save(path)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """``Checkpoint.load(path)``."""
    return Checkpoint.load(path)
