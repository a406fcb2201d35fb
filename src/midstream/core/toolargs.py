"""Tool-call arguments while they stream, and the one strict verdict when their block closes.

:class:`ToolArgs` follows one tool-call block: each ``ToolArgsDelta`` fragment goes through a
:class:`~midstream.core.partial_json.PartialJSON`, which yields field events as the arguments arrive
(:class:`ToolFieldStart`, :class:`ToolFieldDelta` for string text, :class:`ToolFieldComplete`), each with
the call's block index and the field's JSON path. Those are previews for display.

Only at the block's stop, and only when it stopped normally, is the input parsed strictly and checked
against the tool's schema (a JSON Schema dict, or a pydantic model class). The verdict is exactly one of

* :class:`ToolCallReady` with the validated input (the only event that may drive a side effect);
* :class:`ToolCallInvalid` with the raw text, a reason (``truncated``, ``invalid_json`` or ``schema``)
  and the error; :attr:`ToolCallInvalid.wrapped` is ``{"INVALID_JSON": raw}`` for echoing back to a
  provider that needs a JSON object.

A prefix that happens to parse is never ready, and a block that did not stop normally (max tokens, EOF,
a failed or cancelled response) is always ``truncated``. :class:`ToolTracker` runs one ``ToolArgs`` per
tool-call block of a decoded event stream; :func:`with_tool_events` interleaves its events with the
stream's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from midstream.core.partial_json import (
    ContainerEnd,
    ContainerStart,
    JsonEvent,
    JsonPath,
    PartialJSON,
    StringDelta,
    StringStart,
    ValueComplete,
)
from midstream.errors import IncompleteJSON, InvalidJSON, JSONError, LimitExceeded, LocalError, RemoteError
from midstream.events import BlockStart, BlockStop, Event, ResponseEnd, ResponseStart, ToolArgsDelta

__all__ = [
    "InvalidReason",
    "Schema",
    "ToolArgs",
    "ToolCallInvalid",
    "ToolCallReady",
    "ToolEvent",
    "ToolFieldComplete",
    "ToolFieldDelta",
    "ToolFieldStart",
    "ToolInputError",
    "ToolTracker",
    "validate",
    "with_tool_events",
]

InvalidReason = Literal["truncated", "invalid_json", "schema"]
Schema = Mapping[str, Any] | type
"""A JSON Schema (a dict) or a pydantic model class (anything with a ``model_validate`` classmethod)."""

DEFAULT_MAX_DEPTH = 1000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ToolFieldStart:
    """A field (object member or array element, at ``path``) of call ``index`` started to arrive.

    Example:

        >>> args = midstream.ToolArgs(0, id="toolu_1", name="save", schema={
        ...     "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]})
        >>> args.feed('{"title": "')
        [ToolFieldStart(index=0, path=('title',))]
    """

    kind: ClassVar[Literal["tool_field_start"]] = "tool_field_start"
    index: int
    path: JsonPath


@dataclass(frozen=True, slots=True)
class ToolFieldDelta:
    """More text of the string field at ``path``: a preview for display, never for action.

    Example:

        >>> args = midstream.ToolArgs(0, id="toolu_1", name="save", schema={
        ...     "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]})
        >>> args.feed('{"title": "Riv')[-1]
        ToolFieldDelta(index=0, path=('title',), text='Riv')
    """

    kind: ClassVar[Literal["tool_field_delta"]] = "tool_field_delta"
    index: int
    path: JsonPath
    text: str


@dataclass(frozen=True, slots=True)
class ToolFieldComplete:
    """The field at ``path`` arrived whole. The call as a whole may still turn out invalid.

    Example:

        >>> args = midstream.ToolArgs(0, id="toolu_1", name="save", schema={
        ...     "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]})
        >>> args.feed('{"title": "Rivers"')[-1]
        ToolFieldComplete(index=0, path=('title',), value='Rivers')
    """

    kind: ClassVar[Literal["tool_field_complete"]] = "tool_field_complete"
    index: int
    path: JsonPath
    value: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallReady:
    """The call's block closed normally and its input parsed strictly and passed the schema.

    ``input`` is the parsed JSON object; ``validated`` is what the schema check produced (the pydantic
    model instance for a model class, ``input`` itself otherwise).

    Example:

        >>> args = midstream.ToolArgs(0, id="toolu_1", name="save", schema={
        ...     "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]})
        >>> _ = args.feed('{"title": "Rivers"}')
        >>> ready = args.stop(complete=True)[-1]
        >>> type(ready).__name__, ready.name, ready.input
        ('ToolCallReady', 'save', {'title': 'Rivers'})
    """

    kind: ClassVar[Literal["tool_call_ready"]] = "tool_call_ready"
    index: int
    id: str | None
    name: str | None
    input: dict[str, Any]
    validated: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallInvalid:
    """The call must not run: its input was ``truncated``, not a JSON object (``invalid_json``) or
    failed the tool's ``schema``. ``raw`` is exactly the text received; ``error`` says what went wrong.

    Example:

        >>> args = midstream.ToolArgs(0, id="toolu_1", name="save", schema={
        ...     "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]})
        >>> _ = args.feed('{"title": "Riv')
        >>> invalid = args.stop(complete=False)[-1]          # the block was cut: never run it
        >>> type(invalid).__name__, invalid.reason, invalid.wrapped
        ('ToolCallInvalid', 'truncated', {'INVALID_JSON': '{"title": "Riv'})
    """

    kind: ClassVar[Literal["tool_call_invalid"]] = "tool_call_invalid"
    index: int
    id: str | None
    name: str | None
    raw: str
    reason: InvalidReason
    error: Exception | None = None

    @property
    def wrapped(self) -> dict[str, str]:
        """``{"INVALID_JSON": raw}``: a valid object standing for the bad input when echoing it back."""
        return {"INVALID_JSON": self.raw}


ToolEvent = ToolFieldStart | ToolFieldDelta | ToolFieldComplete | ToolCallReady | ToolCallInvalid
"""Any derived tool event (:class:`ToolArgs`, :class:`ToolTracker`), told apart by ``kind``.

Example:

    >>> args = midstream.ToolArgs(0, id="toolu_1", name="save", schema={
    ...     "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]})
    >>> _ = args.feed('{"title": "Rivers"}')
    >>> [event.kind for event in args.stop(complete=True)]
    ['tool_call_ready']
"""


class ToolInputError(RemoteError, ValueError):
    """A tool call's input does not satisfy the tool's JSON Schema; ``path`` is where it fails.

    Example:

        >>> from midstream.core.toolargs import validate
        >>> schema = {"type": "object", "properties": {"city": {"type": "string"}}}
        >>> try:
        ...     validate({"city": 3}, schema)
        ... except midstream.ToolInputError as exc:
        ...     print(exc.path, exc)
        ('city',) expected string, got int at /city
    """

    def __init__(self, message: str, *, path: JsonPath = ()) -> None:
        where = "/".join(str(p) for p in path)
        super().__init__(f"{message} at /{where}" if path else message)
        self.path = path


class ToolArgs:
    """The arguments of one tool-call block: field events while they stream, one verdict at the stop.

    ``schema`` is a JSON Schema dict (the common subset: see :func:`validate`) or a pydantic model class.
    ``max_depth`` / ``max_bytes`` bound the parser; an input that exceeds them is ``invalid_json`` with
    the :class:`~midstream.errors.LimitExceeded` as its error. ``events=False`` skips the field events.

    Example:

        >>> args = midstream.ToolArgs(0, id="toolu_1", name="save", schema={
        ...     "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]})
        >>> [e.kind for e in args.feed('{"title": "Riv')]
        ['tool_field_start', 'tool_field_delta']
        >>> args.feed('ers"}')[-1].kind
        'tool_field_complete'
        >>> args.stop(complete=True)[-1].input
        {'title': 'Rivers'}
    """

    def __init__(
        self,
        index: int,
        *,
        id: str | None = None,
        name: str | None = None,
        schema: Schema | None = None,
        max_depth: int | None = DEFAULT_MAX_DEPTH,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        events: bool = True,
    ) -> None:
        self.index = index
        self.id = id
        self.name = name
        self.schema = schema
        # Duplicate keys are invalid here: a field reported complete must never change afterwards.
        self._parser = PartialJSON(max_depth=max_depth, max_bytes=max_bytes, events=events, unique_keys=True)
        self._fragments: list[str] = []
        self._error: JSONError | LimitExceeded | None = None
        self._result: ToolCallReady | ToolCallInvalid | None = None

    @property
    def raw(self) -> str:
        """The argument text received so far, exactly."""
        if len(self._fragments) > 1:
            self._fragments[:] = ["".join(self._fragments)]
        return self._fragments[0] if self._fragments else ""

    @property
    def result(self) -> ToolCallReady | ToolCallInvalid | None:
        """The verdict, once :meth:`stop` has been called."""
        return self._result

    def snapshot(self) -> Any:
        """A preview of the input so far (see :meth:`PartialJSON.snapshot`); never act on it."""
        return self._parser.snapshot()

    def is_complete(self, path: JsonPath) -> bool:
        """True if the field at ``path`` arrived whole (the call itself may still be invalid)."""
        return self._error is None and self._parser.is_complete(path)

    def feed(self, fragment: str) -> list[ToolEvent]:
        """One argument fragment: the field events it completes. Bad JSON is kept for the verdict."""
        if self._result is not None:
            raise LocalError(f"ToolArgs.feed() for call {self.index} after stop()")
        self._fragments.append(fragment)
        if self._error is not None:
            return []
        try:
            events = self._parser.feed(fragment)
        except (JSONError, LimitExceeded) as exc:
            self._error = exc
            return []
        return self._translate(events) if events else []

    def stop(self, complete: bool = True) -> list[ToolEvent]:
        """The block stopped (``complete=False``: the response ended first). Returns the one verdict."""
        if self._result is not None:
            raise LocalError(f"ToolArgs.stop() for call {self.index} called twice")
        self._result = self._verdict(complete)
        return [self._result]

    def _verdict(self, complete: bool) -> ToolCallReady | ToolCallInvalid:
        if not complete:
            error = IncompleteJSON(
                "tool call block did not close", position=len(self.raw), reason="the response ended first"
            )
            return self._invalid("truncated", error)
        if self._error is not None:
            return self._invalid("invalid_json", self._error)
        if self.raw.strip() == "":
            value: Any = {}  # a tool without arguments
        else:
            try:
                value = self._parser.finish()
            except IncompleteJSON as exc:
                return self._invalid("truncated", exc)
            except (JSONError, LimitExceeded) as exc:
                return self._invalid("invalid_json", exc)
        if not isinstance(value, dict):
            not_object = InvalidJSON("tool input is not an object", position=0, reason="expected an object")
            return self._invalid("invalid_json", not_object)
        try:
            validated = value if self.schema is None else validate(value, self.schema)
        except ValueError as exc:  # ToolInputError, pydantic's ValidationError
            return self._invalid("schema", exc)
        return ToolCallReady(index=self.index, id=self.id, name=self.name, input=value, validated=validated)

    def _invalid(self, reason: InvalidReason, error: Exception) -> ToolCallInvalid:
        return ToolCallInvalid(
            index=self.index, id=self.id, name=self.name, raw=self.raw, reason=reason, error=error
        )

    def _translate(self, events: list[JsonEvent]) -> list[ToolEvent]:
        out: list[ToolEvent] = []
        index = self.index
        for ev in events:
            path = ev.path
            if not path:
                continue  # the root is the call itself: its verdict comes at the stop
            if isinstance(ev, StringDelta):
                out.append(ToolFieldDelta(index, path, ev.text))
            elif isinstance(ev, StringStart | ContainerStart):
                out.append(ToolFieldStart(index, path))
            elif isinstance(ev, ValueComplete):
                if not isinstance(ev.value, str):  # numbers and literals are only seen whole
                    out.append(ToolFieldStart(index, path))
                out.append(ToolFieldComplete(index, path, ev.value))
            elif isinstance(ev, ContainerEnd):
                out.append(ToolFieldComplete(index, path, ev.value))
        return out


class ToolTracker:
    """Follows every tool-call block of a decoded event stream (see :func:`midstream.wire.decoder`).

    ``schemas`` maps tool names to their schema; a tool without one gets only the strict JSON check
    (whether an unknown tool may run is the caller's decision). Server-tool blocks are not tracked: the
    provider runs those. Feed it every event in order; it returns the derived events.

    Example:

        >>> from midstream import ResponseStart, BlockStart, ToolArgsDelta, BlockStop
        >>> tracker = midstream.ToolTracker({"get_weather": {"type": "object", "required": ["city"]}})
        >>> out = []
        >>> for event in [ResponseStart(provider="anthropic"),
        ...               BlockStart(index=0, type="tool_call", id="t1", name="get_weather"),
        ...               ToolArgsDelta(0, '{"city": "Paris"}'), BlockStop(0)]:
        ...     out += tracker.feed(event)
        >>> out[-1].kind, out[-1].input
        ('tool_call_ready', {'city': 'Paris'})
    """

    def __init__(
        self,
        schemas: Mapping[str, Schema] | None = None,
        *,
        max_depth: int | None = DEFAULT_MAX_DEPTH,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ) -> None:
        self.schemas: Mapping[str, Schema] = schemas or {}
        self.max_depth = max_depth
        self.max_bytes = max_bytes
        self._open: dict[int, ToolArgs] = {}

    @property
    def open_calls(self) -> dict[int, ToolArgs]:
        """Tool calls whose block has started and not yet stopped, by block index."""
        return dict(self._open)

    def feed(self, event: Event) -> list[ToolEvent]:
        """One stream event in; the tool events it causes out."""
        if isinstance(event, ToolArgsDelta):
            call = self._open.get(event.index)
            return call.feed(event.fragment) if call is not None else []
        if isinstance(event, BlockStart) and event.type == "tool_call":
            self._open[event.index] = ToolArgs(
                event.index,
                id=event.id,
                name=event.name,
                schema=self.schemas.get(event.name) if event.name is not None else None,
                max_depth=self.max_depth,
                max_bytes=self.max_bytes,
            )
        elif isinstance(event, BlockStop):
            call = self._open.pop(event.index, None)
            if call is not None:
                return call.stop(event.complete)
        elif isinstance(event, ResponseEnd | ResponseStart):
            # Without a timeline in front, a call may still be open here: it did not finish.
            out = [ev for call in self._open.values() for ev in call.stop(False)]
            self._open.clear()
            return out
        return []


def with_tool_events(
    events: Iterable[Event], schemas: Mapping[str, Schema] | None = None
) -> Iterator[Event | ToolEvent]:
    """Each event of ``events``, followed by the tool events it causes.

    Example:

        >>> from midstream import ResponseStart, BlockStart, ToolArgsDelta, BlockStop
        >>> events = [ResponseStart(provider="anthropic"),
        ...           BlockStart(index=0, type="tool_call", id="t1", name="get_weather"),
        ...           ToolArgsDelta(0, '{"city": "Paris"}'), BlockStop(0)]
        >>> [e.kind for e in midstream.with_tool_events(events)]  # doctest: +NORMALIZE_WHITESPACE
        ['response_start', 'block_start', 'tool_args_delta', 'tool_field_start', 'tool_field_delta',
         'tool_field_complete', 'block_stop', 'tool_call_ready']
    """
    tracker = ToolTracker(schemas)
    for event in events:
        yield event
        yield from tracker.feed(event)


# -- a small JSON Schema validator -------------------------------------------------------------------


def validate(value: Any, schema: Schema) -> Any:
    """Check ``value`` against ``schema``; return the validated value or raise ``ValueError``.

    A pydantic model class validates with ``model_validate`` (its ``ValidationError`` is a
    ``ValueError``) and returns the instance. A JSON Schema dict is checked for the subset tool schemas
    use: ``type`` (a name or a list, so ``["string", "null"]`` is nullable; OpenAPI's ``nullable`` too),
    ``properties``, ``required``, ``additionalProperties``, ``items``, ``prefixItems``, ``minItems`` /
    ``maxItems``, ``enum``, ``const``, ``minimum`` / ``maximum`` (and exclusive ones), ``minLength`` /
    ``maxLength``, ``anyOf`` / ``oneOf`` / ``allOf``, ``not`` and local ``$ref`` (``#/$defs/...``);
    other keywords (``format``, ``pattern``, ``description``...) are ignored. Failures raise
    :class:`ToolInputError` naming the path.
    """
    model_validate = getattr(schema, "model_validate", None)
    if isinstance(schema, type) and model_validate is not None:
        return model_validate(value)
    if not isinstance(schema, Mapping):
        raise LocalError(f"not a JSON Schema or a pydantic model: {schema!r}")
    try:
        _check(value, schema, schema, ())
    except RecursionError:
        raise ToolInputError("input too deeply nested to validate") from None
    return value


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    ),
}


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``true`` is not ``1`` (``1`` and ``1.0`` are the same number)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_json_equal(a[k], b[k]) for k in a)
        )
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#"):
        raise LocalError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    try:
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    except (KeyError, IndexError, TypeError) as exc:
        raise LocalError(f"the tool schema's $ref {ref!r} does not resolve") from exc
    return node  # type: ignore[no-any-return]


def _check(value: Any, schema: Mapping[str, Any] | bool, root: Mapping[str, Any], path: JsonPath) -> None:
    if schema is True:
        return
    if schema is False:
        raise ToolInputError("no value is allowed here", path=path)
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), root, path)
    _check_type(value, schema, path)
    if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
        raise ToolInputError(f"{value!r} is not one of {schema['enum']!r}", path=path)
    if "const" in schema and not _json_equal(value, schema["const"]):
        raise ToolInputError(f"{value!r} is not {schema['const']!r}", path=path)
    _check_bounds(value, schema, path)
    if isinstance(value, dict):
        _check_object(value, schema, root, path)
    elif isinstance(value, list):
        _check_array(value, schema, root, path)
    _check_combinators(value, schema, root, path)


def _check_type(value: Any, schema: Mapping[str, Any], path: JsonPath) -> None:
    expected = schema.get("type")
    if expected is None:
        return
    names = [expected] if isinstance(expected, str) else list(expected)
    if schema.get("nullable") is True:
        names.append("null")
    if not any(_TYPES.get(name, lambda v: False)(value) for name in names):
        raise ToolInputError(f"expected {' or '.join(names)}, got {type(value).__name__}", path=path)


def _check_bounds(value: Any, schema: Mapping[str, Any], path: JsonPath) -> None:
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            raise ToolInputError(f"{value} is less than {schema['minimum']}", path=path)
        if "maximum" in schema and value > schema["maximum"]:
            raise ToolInputError(f"{value} is more than {schema['maximum']}", path=path)
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise ToolInputError(f"{value} is not more than {schema['exclusiveMinimum']}", path=path)
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            raise ToolInputError(f"{value} is not less than {schema['exclusiveMaximum']}", path=path)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise ToolInputError(f"string shorter than {schema['minLength']}", path=path)
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise ToolInputError(f"string longer than {schema['maxLength']}", path=path)


_Sub = Mapping[str, Any]


def _check_object(value: dict[str, Any], schema: _Sub, root: _Sub, path: JsonPath) -> None:
    for name in schema.get("required", ()):
        if name not in value:
            raise ToolInputError(f"missing required field {name!r}", path=path)
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            _check(item, props[key], root, (*path, key))
        elif extra is False:
            raise ToolInputError(f"unexpected field {key!r}", path=path)
        elif isinstance(extra, Mapping):
            _check(item, extra, root, (*path, key))


def _check_array(value: list[Any], schema: _Sub, root: _Sub, path: JsonPath) -> None:
    if len(value) < schema.get("minItems", 0):
        raise ToolInputError(f"fewer than {schema['minItems']} items", path=path)
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise ToolInputError(f"more than {schema['maxItems']} items", path=path)
    prefix = schema.get("prefixItems", ())
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else schema.get("items")
        if sub is not None:
            _check(item, sub, root, (*path, i))


def _check_combinators(value: Any, schema: _Sub, root: _Sub, path: JsonPath) -> None:
    for sub in schema.get("allOf", ()):
        _check(value, sub, root, path)
    if "anyOf" in schema and not any(_passes(value, s, root, path) for s in schema["anyOf"]):
        raise ToolInputError("matches none of anyOf", path=path)
    if "oneOf" in schema:
        matched = sum(_passes(value, s, root, path) for s in schema["oneOf"])
        if matched != 1:
            raise ToolInputError(f"matches {matched} of oneOf, not exactly one", path=path)
    if "not" in schema and _passes(value, schema["not"], root, path):
        raise ToolInputError("matches a schema it must not match", path=path)


def _passes(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], path: JsonPath) -> bool:
    try:
        _check(value, schema, root, path)
    except ToolInputError:
        return False
    return True
