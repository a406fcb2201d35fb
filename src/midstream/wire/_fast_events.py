"""The two events nearly every streamed token becomes, built at about half their constructors' cost.

A frozen dataclass's generated ``__init__`` sets each field with ``object.__setattr__`` (its way
around the frozen ``__setattr__``), a generic attribute lookup per field. Setting the slots through
their descriptors does the same in a fraction of the time, and a decoder builds one ``TextDelta`` or
``ToolArgsDelta`` per token. The objects are the constructors' own: same class, fields, equality,
hash and repr. ``tests/test_fast_paths.py`` checks that these set every field of their class and
that the classes have no ``__post_init__`` to skip, so a change to the events fails there, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from midstream.events import TextDelta, ToolArgsDelta

__all__ = ["FIELDS", "text_delta", "tool_args_delta"]

FIELDS: dict[type, tuple[str, ...]] = {
    TextDelta: ("index", "text", "seq"),
    ToolArgsDelta: ("index", "fragment", "seq"),
}
"""The fields each function below sets, by class (the tests compare them with the class's own)."""


def _setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    setter: Callable[[Any, Any], None] = getattr(cls, name).__set__  # the slot's member descriptor
    return setter


_new = object.__new__
_text_index, _text_text, _text_seq = (_setter(TextDelta, name) for name in FIELDS[TextDelta])
_args_index, _args_fragment, _args_seq = (_setter(ToolArgsDelta, name) for name in FIELDS[ToolArgsDelta])


def text_delta(index: int, text: str, seq: int | None = None) -> TextDelta:
    """``TextDelta(index, text, seq=seq)``."""
    event: TextDelta = _new(TextDelta)
    _text_index(event, index)
    _text_text(event, text)
    _text_seq(event, seq)
    return event


def tool_args_delta(index: int, fragment: str, seq: int | None = None) -> ToolArgsDelta:
    """``ToolArgsDelta(index, fragment, seq=seq)``."""
    event: ToolArgsDelta = _new(ToolArgsDelta)
    _args_index(event, index)
    _args_fragment(event, fragment)
    _args_seq(event, seq)
    return event
