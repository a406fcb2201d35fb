"""Tools: typed Python functions the model may call, validated before they run.

``@tool`` turns a typed function, sync or async, into a :class:`Tool`. The JSON schema comes from the
signature (pydantic, one field per parameter, unknown fields rejected) and the docstring (its summary
is the description; Google-style ``Args:`` entries or Sphinx ``:param x:`` lines describe the
parameters)::

    @tool
    def search(query: str, limit: int = 5) -> list[str]:
        \"""Search the index.

        Args:
            query: words to look for
            limit: how many hits at most
        \"""

    @tool(side_effect=True, compensate=lambda record: os.remove(record.input["path"]))
    async def write_file(path: str, content: str) -> str:
        ...

    args = search.validate({"query": "x"})          # {"query": "x", "limit": 5}, or ToolInputError
    result = await search.invoke(args)              # sync functions run in a worker thread

A tool with an explicit ``schema`` (a JSON Schema dict, or a pydantic model class) receives the
validated input as one argument (the dict, or the model instance) instead of keyword arguments.

Options: ``eager`` asks for fine-grained argument streaming (``True``) or buffered arguments (``False``);
left out (``None``), the agent's settings decide (``[streaming.eager]``: per tool, then the default),
and without settings the arguments are buffered; ``side_effect`` makes the call journaled,
deduplicated and compensable (see :mod:`midstream.agent.effects`), with ``compensate(record)`` undoing
it from its :class:`~midstream.agent.effects.EffectRecord`; ``idempotent`` says running it twice is
harmless; ``key`` replaces the default idempotency key; ``streams`` names fields that may be consumed
while they stream, through ``sink``, a :data:`SinkFactory`.

**Streamed fields.** For each call, :meth:`Tool.open_streams` gives a :class:`CallStreams`: feed it the
call's :class:`~midstream.core.toolargs.ToolFieldStart` / ``ToolFieldDelta`` events; the sink for a
field opens on its first event and gets every piece of text with ``write``. When the call is ready and
about to run, :meth:`CallStreams.commit` (given the validated input) commits each sink whose text
matches the final value exactly, and discards any other; a call that is invalid, denied or cancelled
gets :meth:`CallStreams.discard`. :class:`TempFileSink` writes a temporary file and moves it into
place atomically on commit::

    @tool(streams=("content",), sink=TempFileSink.factory(lambda input: input["path"]))
    def write_file(path: str, content: str) -> str:
        committed = current_call().committed        # {"content": Path(path)}: already written
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import os
import re
import shutil
import tempfile
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, overload, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from midstream.agent.effects import CallContext, EffectRecord, current_call, idempotency_key
from midstream.client.request import ToolSpec
from midstream.core.partial_json import JsonPath
from midstream.core.toolargs import ToolFieldDelta, ToolFieldStart, ToolInputError, validate
from midstream.errors import LocalError

__all__ = [
    "CallContext",
    "CallStreams",
    "SinkFactory",
    "StreamSink",
    "TempFileSink",
    "Tool",
    "ToolInputError",
    "current_call",
    "tool",
]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what every provider accepts as a tool name


@runtime_checkable
class StreamSink(Protocol):
    """Consumes one string field of a tool call while it streams.

    ``write`` gets each piece of text in order; then exactly one of ``commit`` (the call is ready and
    about to run; ``input`` is its validated JSON input; the return value is passed on to the tool as
    ``current_call().committed[field]``) or ``discard`` (anything else). Neither may be followed by
    ``write``.
    """

    def write(self, text: str) -> None: ...
    def commit(self, input: Mapping[str, Any] | None = None) -> Any: ...
    def discard(self) -> None: ...


SinkFactory = Callable[[str, JsonPath], StreamSink]
"""Makes the sink for (call id, field path)."""


class TempFileSink:
    """Streams a field into a temporary file; ``commit`` moves it to ``destination`` atomically.

    ``destination`` is a path, or a function of the call's validated input returning one (the path is
    often another argument of the same call, known only at the end). The temporary file lives in
    ``directory`` (default: the destination's directory when it is fixed, else the system's temporary
    directory); a move across file systems copies next to the destination first, then renames, so
    readers never see a half-written file. ``commit`` returns the destination :class:`~pathlib.Path`.
    """

    def __init__(
        self,
        call_id: str,
        path: JsonPath,
        *,
        destination: str | os.PathLike[str] | Callable[[Mapping[str, Any]], str | os.PathLike[str]],
        directory: str | os.PathLike[str] | None = None,
        encoding: str = "utf-8",
    ) -> None:
        self.call_id = call_id
        self.path = path
        self.destination = destination
        if directory is None and not callable(destination):
            directory = Path(destination).parent
        self.directory = None if directory is None else Path(directory)
        self.encoding = encoding
        self.temp_path: Path | None = None
        self._file: Any = None
        self._state = "open"

    @classmethod
    def factory(
        cls,
        destination: str | os.PathLike[str] | Callable[[Mapping[str, Any]], str | os.PathLike[str]],
        *,
        directory: str | os.PathLike[str] | None = None,
    ) -> SinkFactory:
        """A :data:`SinkFactory` making one ``TempFileSink`` per call and field."""

        def make(call_id: str, path: JsonPath) -> StreamSink:
            return cls(call_id, path, destination=destination, directory=directory)

        return make

    def _ensure_file(self) -> Any:
        if self._file is None:
            if self.directory is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
            safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", self.call_id)[:40]
            fd, name = tempfile.mkstemp(prefix=f".midstream-{safe_id}-", suffix=".part", dir=self.directory)
            self.temp_path = Path(name)
            self._file = os.fdopen(fd, "w", encoding=self.encoding, newline="")
        return self._file

    def write(self, text: str) -> None:
        """Append ``text`` to the temporary file (flushed: readers of the file see it as it streams)."""
        if self._state != "open":
            raise LocalError(f"TempFileSink.write() after {self._state}")
        handle = self._ensure_file()
        handle.write(text)
        handle.flush()

    def commit(self, input: Mapping[str, Any] | None = None) -> Path:
        """Move the file into place (atomically) and return its final path."""
        if self._state != "open":
            raise LocalError(f"TempFileSink.commit() after {self._state}")
        if callable(self.destination):
            if input is None:
                raise LocalError("this TempFileSink's destination depends on the input: pass it to commit()")
            target = Path(self.destination(input))
        else:
            target = Path(self.destination)
        handle = self._ensure_file()
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        self._state = "committed"
        assert self.temp_path is not None
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_move(self.temp_path, target)
        return target

    def discard(self) -> None:
        """Delete the temporary file. Safe to call more than once, and after a commit (no-op)."""
        if self._state != "open":
            return
        self._state = "discarded"
        if self._file is not None:
            self._file.close()
        if self.temp_path is not None:
            self.temp_path.unlink(missing_ok=True)


def _atomic_move(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError:  # another file system: copy beside the target, then rename there
        fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, staging)
            os.replace(staging, target)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
        source.unlink(missing_ok=True)


class CallStreams:
    """The streamed fields of one tool call: sinks opened as fields arrive, then committed or discarded.

    Commit checks that each sink received exactly the final string value of its field (a SHA-256 of
    the text written against the validated input); a sink that did not (the field was not a string,
    or a write failed) is discarded instead, so a sink never commits something the call did not say.
    """

    def __init__(self, tool: Tool, call_id: str) -> None:
        self.tool = tool
        self.call_id = call_id
        self._paths = {_path_key(p): p for p in tool.streams}
        self._sinks: dict[str, tuple[StreamSink, Any]] = {}  # key -> (sink, sha256 of the text so far)
        self.errors: list[tuple[str, BaseException]] = []
        self._closed = False

    def feed(self, event: object) -> None:
        """One of the call's tool events; only starts and text of the streamed fields matter."""
        if self._closed or not isinstance(event, ToolFieldStart | ToolFieldDelta):
            return
        key = _path_key(event.path)
        if key not in self._paths:
            return
        entry = self._sinks.get(key)
        if entry is None:
            entry = self._open(key, event.path)
            if entry is None:
                return
        if isinstance(event, ToolFieldDelta):
            sink, digest = entry
            try:
                sink.write(event.text)
                digest.update(event.text.encode("utf-8"))
            except Exception as exc:
                self._drop(key, exc)

    def _open(self, key: str, path: JsonPath) -> tuple[StreamSink, Any] | None:
        assert self.tool.sink is not None
        try:
            entry = (self.tool.sink(self.call_id, path), hashlib.sha256())
        except Exception as exc:
            self.errors.append((key, exc))
            self._paths.pop(key)
            return None
        self._sinks[key] = entry
        return entry

    def _drop(self, key: str, exc: BaseException) -> None:
        self.errors.append((key, exc))
        sink, _ = self._sinks.pop(key)
        self._paths.pop(key)
        _quiet_discard(sink)

    def commit(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """Commit every sink whose text equals its field's final value; returns field path -> result.

        A failing ``commit`` raises (the call must not run as if its field were in place).
        """
        self._closed = True
        out: dict[str, Any] = {}
        for key, (sink, digest) in list(self._sinks.items()):
            del self._sinks[key]
            value = _lookup(input, self._paths[key])
            final = hashlib.sha256(value.encode("utf-8")).digest() if isinstance(value, str) else None
            if final != digest.digest():
                _quiet_discard(sink)
                continue
            try:
                out[key] = sink.commit(input)
            except BaseException:
                self.discard()
                raise
        return out

    def discard(self) -> None:
        """Discard every open sink (errors are recorded, not raised)."""
        self._closed = True
        for key, (sink, _) in list(self._sinks.items()):
            del self._sinks[key]
            try:
                sink.discard()
            except Exception as exc:
                self.errors.append((key, exc))


def _quiet_discard(sink: StreamSink) -> None:
    with contextlib.suppress(Exception):  # cleanup of an abandoned sink is best effort
        sink.discard()


def _path_key(path: str | JsonPath) -> str:
    return path if isinstance(path, str) else ".".join(str(p) for p in path)


def _lookup(value: Any, key: str) -> Any:
    for part in key.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


# -- docstrings ---------------------------------------------------------------------------------------

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?):\s*$")
_GOOGLE_PARAM = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(description, {parameter: description})`` from a Google-style or Sphinx-style docstring."""
    if not doc:
        return "", {}
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    entry_indent = 0
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _SECTION.match(stripped)
        sphinx = _SPHINX_PARAM.match(stripped)
        google = _GOOGLE_PARAM.match(stripped)
        if header and indent == 0:
            section, current = header.group(1), None
        elif sphinx:
            section, current = "Args", sphinx.group(1)
            params[current] = sphinx.group(2).strip()
        elif stripped.startswith(":"):
            section, current = ":", None  # :returns:, :raises: ...
        elif section is None:
            summary.append(line)
        elif section not in _PARAM_SECTIONS or not stripped:
            continue
        elif google and (current is None or indent <= entry_indent):
            current, entry_indent = google.group(1).lstrip("*"), indent
            params[current] = google.group(2).strip()
        elif current is not None:  # a continuation line of the current parameter
            params[current] = f"{params[current]} {stripped}".strip()
    return "\n".join(summary).strip(), params


_PARAM_SECTIONS = ("Args", "Arguments", "Parameters", "Params")


# -- tools --------------------------------------------------------------------------------------------


class Tool:
    """A callable tool: its name, :class:`ToolSpec`, validation, invocation and options.

    Build one with :func:`tool`, or directly: ``Tool(fn)`` (schema from the signature) or
    ``Tool(fn, schema={...})`` / ``Tool(fn, schema=Model)`` (``fn`` gets the validated input as one
    argument). Calling the tool object calls the function as written.

    Example:

        >>> @midstream.tool
        ... def get_weather(city: str, unit: str = "celsius") -> str:
        ...     \"\"\"Weather in a city.
        ...
        ...     Args:
        ...         city: the city's name
        ...     \"\"\"
        ...     return f"18 degrees {unit} in {city}"
        >>> import asyncio
        >>> asyncio.run(get_weather.run({"city": "Paris"}))      # validated, then called
        '18 degrees celsius in Paris'
        >>> get_weather("Tokyo", unit="kelvin")                    # still the plain function
        '18 degrees kelvin in Tokyo'
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        schema: Mapping[str, Any] | type[BaseModel] | None = None,
        eager: bool | None = None,
        streams: Sequence[str] = (),
        sink: SinkFactory | None = None,
        side_effect: bool = False,
        compensate: Callable[[EffectRecord], Any] | None = None,
        idempotent: bool = False,
        key: Callable[[Mapping[str, Any]], str] | None = None,
    ) -> None:
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", ""))
        if not _NAME.match(self.name):
            raise LocalError(f"tool name {self.name!r} must be 1-64 letters, digits, '_' or '-'")
        summary, param_docs = parse_docstring(inspect.getdoc(fn))
        self.description = summary if description is None else description
        self.eager = eager
        self.streams = tuple(streams)
        self.sink = sink
        self.side_effect = side_effect
        self.compensate = compensate
        self.idempotent = idempotent
        self.key = key
        self.is_async = _is_async(fn)
        self._explicit = schema
        self._model: type[BaseModel] | None = None
        if schema is None:
            self._model = _signature_model(fn, self.name, param_docs)
            self.input_schema = _clean_schema(self._model.model_json_schema())
        elif isinstance(schema, type) and issubclass(schema, BaseModel):
            self.input_schema = _clean_schema(schema.model_json_schema())
        else:
            self.input_schema = dict(schema)
        self._check_options()

    def _check_options(self) -> None:
        if self.compensate is not None and not self.side_effect:
            raise LocalError(f"tool {self.name!r}: compensate only makes sense with side_effect=True")
        if self.streams and self.sink is None:
            raise LocalError(f"tool {self.name!r}: streams={self.streams!r} needs a sink factory")
        properties = self.input_schema.get("properties", {})
        for field in self.streams:
            if field.split(".")[0] not in properties:
                raise LocalError(f"tool {self.name!r}: streamed field {field!r} is not an input field")

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly, as if it were not a tool."""
        return self.fn(*args, **kwargs)

    @property
    def spec(self) -> ToolSpec:
        """What the model is told: name, description, input schema, ``eager``."""
        return ToolSpec(self.name, self.input_schema, self.description, bool(self.eager))

    def to_spec(self, *, eager: bool | None = None) -> ToolSpec:
        """:attr:`spec`, with ``eager`` overridden when given (settings, or a fallback to buffered)."""
        chosen = bool(self.eager) if eager is None else eager
        return ToolSpec(self.name, self.input_schema, self.description, chosen)

    @property
    def can_compensate(self) -> bool:
        """True if the tool has a ``compensate`` function."""
        return self.compensate is not None

    def idempotency_key(self, input: Mapping[str, Any]) -> str:
        """The tool's own ``key(input)``, or :func:`~midstream.agent.effects.idempotency_key`."""
        return self.key(input) if self.key is not None else idempotency_key(self.name, dict(input))

    def validate(self, input: Mapping[str, Any]) -> Any:
        """The arguments for :meth:`invoke`, or :class:`~midstream.core.toolargs.ToolInputError`
        naming every problem (unknown fields included). Typed functions get a dict of keyword
        arguments (pydantic-converted); explicit schemas get the dict or the model instance."""
        if not isinstance(input, Mapping):
            raise ToolInputError(f"tool input must be an object, got {type(input).__name__}")
        try:
            if self._model is not None:
                model = self._model.model_validate(dict(input))
                fields = type(model).model_fields
                return {info.alias or key: getattr(model, key) for key, info in fields.items()}
            if isinstance(self._explicit, type):
                return self._explicit.model_validate(dict(input))
            return validate(dict(input), self.input_schema)
        except ValidationError as exc:
            raise _input_error(exc) from exc

    async def invoke(self, args: Any) -> Any:
        """Run the function with validated ``args``; a sync function runs in a worker thread
        (the current context, so :func:`current_call`, goes with it)."""
        if self._model is not None:
            return await _call(self.fn, self.is_async, **args)
        return await _call(self.fn, self.is_async, args)

    async def run(self, input: Mapping[str, Any]) -> Any:
        """:meth:`validate` then :meth:`invoke` (no journal: use an EffectLedger for side effects)."""
        return await self.invoke(self.validate(input))

    async def run_compensate(self, record: EffectRecord) -> Any:
        """Run ``compensate(record)`` (sync ones in a worker thread)."""
        if self.compensate is None:
            raise LocalError(f"tool {self.name!r} has no compensate function")
        return await _call(self.compensate, _is_async(self.compensate), record)

    def open_streams(self, call_id: str) -> CallStreams | None:
        """A :class:`CallStreams` for one call of this tool, or ``None`` if it streams no fields."""
        return CallStreams(self, call_id) if self.streams and self.sink is not None else None


async def _call(fn: Callable[..., Any], is_async: bool, *args: Any, **kwargs: Any) -> Any:
    result = fn(*args, **kwargs) if is_async else await asyncio.to_thread(fn, *args, **kwargs)
    while inspect.isawaitable(result):  # a sync callable may hand back a coroutine
        result = await result
    return result


def _is_async(fn: Any) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    # an object whose __call__ is async counts too
    return not inspect.isfunction(fn) and inspect.iscoroutinefunction(type(fn).__call__)


def _signature_model(fn: Callable[..., Any], name: str, docs: Mapping[str, str]) -> type[BaseModel]:
    try:
        signature = inspect.signature(fn)
        hints = _type_hints(fn)
    except (TypeError, ValueError, NameError) as exc:
        raise LocalError(f"tool {name!r}: cannot read the signature: {exc}") from None
    # Fields get neutral names and the parameter name as alias, so parameters called ``json``,
    # ``copy``, ``schema`` or ``model_x`` do not collide with pydantic's own attributes.
    fields: dict[str, Any] = {}
    for i, (pname, param) in enumerate(signature.parameters.items()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise LocalError(f"tool {name!r}: parameter {pname!r} cannot be passed by keyword from JSON")
        annotation = hints.get(pname, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[f"p{i}"] = (annotation, Field(default=default, alias=pname, description=docs.get(pname)))
    config = ConfigDict(extra="forbid", protected_namespaces=())
    try:
        model: type[BaseModel] = create_model(f"{name}_input", __config__=config, **fields)
        model.model_json_schema()
    except Exception as exc:  # pydantic raises several kinds for types it cannot describe
        raise LocalError(f"tool {name!r}: cannot build an input schema: {exc}") from None
    return model


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn).__call__
    return typing.get_type_hints(target, include_extras=True)


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's titles (noise for a model) but keep everything that constrains."""
    schema = dict(schema)
    schema.pop("title", None)
    props = schema.get("properties")
    if isinstance(props, dict):
        schema["properties"] = {
            k: {kk: vv for kk, vv in v.items() if kk != "title"} if isinstance(v, dict) else v
            for k, v in props.items()
        }
    return schema


def _input_error(exc: ValidationError) -> ToolInputError:
    problems = []
    first: JsonPath = ()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if not first:
            first = loc
        where = ".".join(str(p) for p in loc) or "input"
        msg = "unexpected field" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{where}: {msg}")
    error = ToolInputError("; ".join(problems))
    error.path = first
    return error


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    schema: Mapping[str, Any] | type[BaseModel] | None = None,
    eager: bool | None = None,
    streams: Sequence[str] = (),
    sink: SinkFactory | None = None,
    side_effect: bool = False,
    compensate: Callable[[EffectRecord], Any] | None = None,
    idempotent: bool = False,
    key: Callable[[Mapping[str, Any]], str] | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None, /, **options: Any
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a :class:`Tool` of a typed function: ``@tool`` or ``@tool(side_effect=True, ...)``.

    The options are :class:`Tool`'s keyword arguments. Misuse (untyped ``*args``, a bad name,
    ``streams`` without a ``sink``...) raises :class:`~midstream.errors.LocalError` at decoration time.

    Example:

        >>> @midstream.tool
        ... def get_weather(city: str, unit: str = "celsius") -> str:
        ...     \"\"\"Weather in a city.
        ...
        ...     Args:
        ...         city: the city's name
        ...     \"\"\"
        ...     return f"18 degrees {unit} in {city}"
        >>> get_weather.name, get_weather.input_schema["required"]
        ('get_weather', ['city'])
        >>> get_weather.validate({"city": "Paris"})
        {'city': 'Paris', 'unit': 'celsius'}
    """
    if fn is not None:
        return Tool(fn, **options)

    def decorate(function: Callable[..., Any]) -> Tool:
        return Tool(function, **options)

    return decorate
