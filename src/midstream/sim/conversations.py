"""The OpenAI Responses the simulator keeps, so that ``previous_response_id`` can continue them.

OpenAI stores a response unless the request says ``"store": false``, and a later request naming it in
``previous_response_id`` continues that conversation: its input and output come before the new input.
The simulator keeps the newest ``limit`` stored responses (least recently used out first); an id it does
not have (never stored, forgotten, or made up) gets OpenAI's 400 ``previous_response_not_found``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from midstream.wire.openai_responses import unknown_previous

__all__ = ["DEFAULT_STORED_RESPONSES", "ResponseStore", "continued", "input_items"]

DEFAULT_STORED_RESPONSES = 1000
"""How many stored responses the simulator keeps."""


@dataclass(frozen=True, slots=True)
class _Stored:
    items: list[Any]  # the conversation as input items: every input, then the response's output
    response: dict[str, Any]  # the response object, as ``GET /v1/responses/{id}`` returns it


class ResponseStore:
    """A bounded LRU of stored responses, by id."""

    def __init__(self, limit: int = DEFAULT_STORED_RESPONSES) -> None:
        self.limit = limit
        self._stored: OrderedDict[str, _Stored] = OrderedDict()

    def __len__(self) -> int:
        return len(self._stored)

    def put(self, response_id: str, inputs: list[Any], response: dict[str, Any]) -> None:
        """Keep ``response`` (answering ``inputs``), forgetting the least recently used beyond the limit."""
        # Output items are valid input items: they replay as they are.
        self._stored[response_id] = _Stored([*inputs, *(response.get("output") or [])], response)
        self._stored.move_to_end(response_id)
        while len(self._stored) > self.limit:
            self._stored.popitem(last=False)

    def items(self, response_id: str) -> list[Any] | None:
        """The conversation up to and including ``response_id``, as input items; ``None`` if unknown."""
        stored = self._stored.get(response_id)
        if stored is None:
            return None
        self._stored.move_to_end(response_id)
        return list(stored.items)

    def response(self, response_id: str) -> dict[str, Any] | None:
        """The stored response object, or ``None``."""
        stored = self._stored.get(response_id)
        return None if stored is None else stored.response

    def resume(self, body: dict[str, Any], previous: str | None) -> tuple[dict[str, Any], list[Any]]:
        """``body`` with the stored conversation it continues before its input, and the whole input.

        Raises OpenAI's 400 (:class:`~midstream.wire.request.RequestRejected`) for an id it does not have.
        """
        if previous is None:
            return body, input_items(body.get("input"))
        history = self.items(previous)
        if history is None:
            raise unknown_previous(previous)
        body = continued(body, history)
        return body, list(body["input"])

    def clear(self) -> None:
        """Forget every stored response."""
        self._stored.clear()


def input_items(value: Any) -> list[Any]:
    """A Responses ``input`` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


def continued(body: dict[str, Any], history: list[Any]) -> dict[str, Any]:
    """``body`` with the stored conversation ``history`` before its own input."""
    return {**body, "input": [*history, *input_items(body.get("input"))]}
