"""Coalescing: merge tiny text and argument deltas before they are written to the log (sans-IO).

A provider may send a token per event; writing each as its own log entry costs a store round trip
and an SSE frame apiece. :class:`Coalescer` holds consecutive deltas of the same block (and, for
field previews, the same path) for at most ``buffer_timeout_ms`` or ``max_bytes`` and hands them on
as one delta with the texts joined. Everything else passes through at once, after flushing what was
held, so the order of blocks and of every non-delta event is kept. The merged delta is one log entry
with one seq: resume stays exact. It is fed the time (``now``, seconds); it never reads a clock::

    >>> c = Coalescer(CoalesceSettings(buffer_timeout_ms=50))
    >>> c.push("text_delta", {"index": 0, "text": "Hel"}, now=0.0)
    []
    >>> c.push("text_delta", {"index": 0, "text": "lo"}, now=0.01)
    []
    >>> c.push("block_stop", {"index": 0}, now=0.02)
    [('text_delta', {'index': 0, 'text': 'Hello'}), ('block_stop', {'index': 0})]

Deltas of one block that interleave (a tool's raw ``tool_args_delta`` and its ``tool_field_delta``
previews) are held side by side and flushed together, each kind in its own order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CoalesceSettings", "Coalescer", "Item"]

Item = tuple[str, dict[str, Any]]
"""``(kind, data)``: one event on its way to the log."""

# kind -> (the text field that is joined, the fields that must be equal to merge)
_MERGEABLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "text_delta": ("text", ("index",)),
    "thinking_delta": ("text", ("index",)),
    "tool_args_delta": ("fragment", ("index",)),
    "tool_field_delta": ("text", ("index", "path")),
}


@dataclass(frozen=True, slots=True)
class CoalesceSettings:
    """``buffer_timeout_ms``: the longest a delta is held (0 turns coalescing off); ``max_bytes``:
    a held text is written once it is this long (UTF-8 bytes, counted as characters here)."""

    buffer_timeout_ms: float = 50.0
    max_bytes: int = 4096

    def __post_init__(self) -> None:
        if self.buffer_timeout_ms < 0 or self.buffer_timeout_ms > 10_000:
            raise ValueError("buffer_timeout_ms must be between 0 and 10000")
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")

    @classmethod
    def coerce(cls, value: CoalesceSettings | Mapping[str, Any] | None) -> CoalesceSettings:
        """From a mapping such as the ``coalesce`` object of ``POST /v1/runs`` (None: the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, CoalesceSettings):
            return value
        unknown = set(value) - {"buffer_timeout_ms", "max_bytes"}
        if unknown:
            raise ValueError(f"unknown coalesce setting(s): {', '.join(sorted(unknown))}")
        return cls(**value)


class _Held:
    __slots__ = ("data", "field", "kind", "size")

    def __init__(self, kind: str, data: Mapping[str, Any], field: str) -> None:
        self.kind, self.field = kind, field
        self.data = dict(data)
        self.size = len(self.data[field])


class Coalescer:
    """Merges deltas per block; see the module docstring. Call :meth:`due` when :attr:`deadline`
    passes and :meth:`flush` at the end."""

    def __init__(self, settings: CoalesceSettings | None = None) -> None:
        self.settings = settings or CoalesceSettings()
        self._held: dict[tuple[Any, ...], _Held] = {}
        self._since: float | None = None

    @property
    def deadline(self) -> float | None:
        """When what is held must be written (``now`` units), or None when nothing is held."""
        if self._since is None:
            return None
        return self._since + self.settings.buffer_timeout_ms / 1000.0

    def push(self, kind: str, data: Mapping[str, Any], *, now: float) -> list[Item]:
        """Take one event; return what is ready to be written, in order."""
        spec = _MERGEABLE.get(kind)
        if spec is None or self.settings.buffer_timeout_ms == 0 or not isinstance(data.get(spec[0]), str):
            return [*self.flush(), (kind, dict(data))]
        field, keys = spec
        key = (kind, *(_hashable(data.get(k)) for k in keys))
        out: list[Item] = []
        if self._held and not any(k[1:2] == key[1:2] for k in self._held):
            out = self.flush()  # another block: keep the order of blocks
        held = self._held.get(key)
        if held is None:
            self._held[key] = _Held(kind, data, field)
            if self._since is None:
                self._since = now
        else:
            held.data[field] += data[field]
            held.size += len(data[field])
        due = self.deadline is not None and now >= self.deadline
        if self._held[key].size >= self.settings.max_bytes or due:
            out.extend(self.flush())
        return out

    def due(self, now: float) -> list[Item]:
        """What must be written by ``now`` (everything held, once the oldest held delta is due)."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return []
        return self.flush()

    def flush(self) -> list[Item]:
        """Everything held, in the order it was first held."""
        out = [(h.kind, h.data) for h in self._held.values()]
        self._held.clear()
        self._since = None
        return out


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
