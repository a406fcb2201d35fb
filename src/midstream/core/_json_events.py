"""The events :class:`~midstream.core.partial_json.PartialJSON` reports, and the paths they carry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

__all__ = [
    "ContainerEnd",
    "ContainerStart",
    "JsonEvent",
    "JsonPath",
    "Key",
    "StringDelta",
    "StringStart",
    "ValueComplete",
]

JsonPath = tuple[str | int, ...]
"""Where a value sits: object keys (``str``) and array indices (``int``) from the root; ``()`` is the root.

Example:

    >>> parser = midstream.PartialJSON()
    >>> [event.path for event in parser.feed('{"tags": ["a"]}') if isinstance(event, midstream.ValueComplete)]
    [('tags', 0)]
"""


@dataclass(frozen=True, slots=True)
class ContainerStart:
    """An object or array opened at ``path``.

    Example:

        >>> midstream.PartialJSON().feed('{"tags": [')[-1]
        ContainerStart(path=('tags',), type='array')
    """

    kind: ClassVar[Literal["container_start"]] = "container_start"
    path: JsonPath
    type: Literal["object", "array"]


@dataclass(frozen=True, slots=True)
class ContainerEnd:
    """The object or array at ``path`` is complete; ``value`` is it (shared with the parser: don't mutate).

    Example:

        >>> midstream.PartialJSON().feed('{"a": 1}')[-1]
        ContainerEnd(path=(), value={'a': 1})
    """

    kind: ClassVar[Literal["container_end"]] = "container_end"
    path: JsonPath
    value: Any


@dataclass(frozen=True, slots=True)
class Key:
    """An object member's key is complete; ``path`` is the member's path (the object's path + ``key``).

    Example:

        >>> midstream.PartialJSON().feed('{"city": ')[-1]
        Key(path=('city',), key='city')
    """

    kind: ClassVar[Literal["key"]] = "key"
    path: JsonPath
    key: str


@dataclass(frozen=True, slots=True)
class StringStart:
    """A string value opened at ``path`` (its text follows as :class:`StringDelta` events).

    Example:

        >>> midstream.PartialJSON().feed('{"city": "')[-1]
        StringStart(path=('city',))
    """

    kind: ClassVar[Literal["string_start"]] = "string_start"
    path: JsonPath


@dataclass(frozen=True, slots=True)
class StringDelta:
    """More decoded text of the string value at ``path``; the deltas concatenate to the final string.

    Example:

        >>> midstream.PartialJSON().feed('{"city": "Par')[-1]
        StringDelta(path=('city',), text='Par')
    """

    kind: ClassVar[Literal["string_delta"]] = "string_delta"
    path: JsonPath
    text: str


@dataclass(frozen=True, slots=True)
class ValueComplete:
    """The string, number, ``true``, ``false`` or ``null`` at ``path`` is complete and will not change.

    Example:

        >>> parser = midstream.PartialJSON()
        >>> parser.feed('{"n": 12')[-1]          # 12 may still become 123: not complete yet
        Key(path=('n',), key='n')
        >>> parser.feed('}')[0]
        ValueComplete(path=('n',), value=12)
    """

    kind: ClassVar[Literal["value_complete"]] = "value_complete"
    path: JsonPath
    value: Any


JsonEvent = ContainerStart | ContainerEnd | Key | StringStart | StringDelta | ValueComplete
"""Every value completes with exactly one event: :class:`ValueComplete` for a scalar, :class:`ContainerEnd`
for an object or array.

Example:

    >>> parser = midstream.PartialJSON()
    >>> [event.kind for event in parser.feed('{"q": "ri')]
    ['container_start', 'key', 'string_start', 'string_delta']
"""
