"""The exception tree (whose fault it was) and the provider error classification table."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import warnings

import pytest

import midstream
import midstream.errors as errors_module
from midstream import wire
from midstream.errors import (
    EventStreamFrameError,
    IncompleteJSON,
    InvalidJSON,
    JSONError,
    LimitExceeded,
    LocalError,
    MidstreamError,
    RemoteError,
    RemoteProtocolError,
    TimelineError,
    UnknownDialect,
    classify_error,
)

# -- the tree ---------------------------------------------------------------------------------------

PARENT = {
    RemoteError: MidstreamError,
    LocalError: MidstreamError,
    RemoteProtocolError: RemoteError,
    JSONError: RemoteError,
    LimitExceeded: RemoteProtocolError,
    EventStreamFrameError: RemoteProtocolError,
    TimelineError: RemoteProtocolError,
    InvalidJSON: JSONError,
    IncompleteJSON: JSONError,
    UnknownDialect: LocalError,
}
REMOTE = [
    RemoteError,
    RemoteProtocolError,
    LimitExceeded,
    EventStreamFrameError,
    TimelineError,
    JSONError,
    InvalidJSON,
    IncompleteJSON,
]
LOCAL = [LocalError, UnknownDialect]


@pytest.mark.parametrize(("cls", "parent"), list(PARENT.items()), ids=lambda c: c.__name__)
def test_direct_parent(cls: type[Exception], parent: type[Exception]) -> None:
    assert parent in cls.__bases__


def test_midstream_error_is_an_exception() -> None:
    assert MidstreamError.__bases__ == (Exception,)


@pytest.mark.parametrize("cls", REMOTE, ids=lambda c: c.__name__)
def test_remote_errors_are_not_local(cls: type[Exception]) -> None:
    assert issubclass(cls, RemoteError)
    assert not issubclass(cls, LocalError)
    assert issubclass(cls, MidstreamError)


@pytest.mark.parametrize("cls", LOCAL, ids=lambda c: c.__name__)
def test_local_errors_are_not_remote(cls: type[Exception]) -> None:
    assert issubclass(cls, LocalError)
    assert not issubclass(cls, RemoteError)
    assert issubclass(cls, MidstreamError)


# -- the drawing in the docstring is the whole tree -------------------------------------------------

# Exceptions that never leave the module that raises them: control flow, not errors a caller sees.
INTERNAL = {
    "midstream.client._session.Problem": "one attempt failed; the session decides retry or give up",
    "midstream.sim.stream.AbruptDisconnect": "the simulator drops a connection on purpose",
    "midstream.wire._gemini_parts.Unstreamable": "a part the Gemini encoder writes whole",
    "midstream.agent._run._Cancelled": "a run's cancel, raced against every wait",
    "midstream.core.partial_json._NotJSON": "the C scanner's signal that the parser re-reads a value itself",
}


def _drawing() -> dict[str, tuple[str | None, str]]:
    """name -> (parent, module) as drawn in midstream.errors' docstring."""
    doc = errors_module.__doc__ or ""
    tree = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    drawn: dict[str, tuple[str | None, str]] = {}
    stack: list[str] = []
    for line in tree.splitlines():
        match = re.match(r"^ {4}((?:[│ ] {3})*)(?:[├└]── )?([A-Z]\w+)\s+([a-z_.]+)\s", line)
        assert match, f"not a tree line: {line!r}"
        depth = len(match[1]) // 4 + (1 if "── " in line else 0)
        del stack[depth:]
        drawn[match[2]] = (stack[-1] if stack else None, f"midstream.{match[3]}")
        stack.append(match[2])
    return drawn


def _every_exception_class() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(midstream.__path__, "midstream."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == info.name:
                found[f"{info.name}.{obj.__qualname__}"] = obj
    return found


def test_the_drawing_is_read_whole() -> None:
    drawn = _drawing()
    assert drawn["MidstreamError"] == (None, "midstream.errors")
    assert drawn["StreamInterruptedByTimeout"] == ("StreamTimeout", "midstream.client.errors")
    assert drawn["EffectUncertainError"] == ("LocalError", "midstream.agent.effects")


def test_every_exception_is_drawn_under_its_parent_with_its_module() -> None:
    drawn = _drawing()
    classes = _every_exception_class()
    ours = {path: cls for path, cls in classes.items() if path not in INTERNAL}
    assert sorted(cls.__name__ for cls in ours.values()) == sorted(drawn)
    for path, cls in ours.items():
        parent, module = drawn[cls.__name__]
        assert cls.__module__ == module, path
        assert issubclass(cls, MidstreamError)
        if parent is not None:
            assert parent in {base.__name__ for base in cls.__bases__}, path


def test_internal_exceptions_exist_and_stay_outside_the_tree() -> None:
    classes = _every_exception_class()
    for path in INTERNAL:
        assert path in classes
        assert not issubclass(classes[path], MidstreamError)


def test_every_public_exception_is_exported_from_midstream() -> None:
    exported = {name for name in midstream.__all__ if isinstance(getattr(midstream, name), type)}
    assert set(_drawing()) - exported <= {
        "SettingsError",
        "ScenarioError",
        "SerializeError",
        "CheckpointError",
        "EffectUncertainError",
        # the relay's errors are exported from midstream.relay
        "RelayError",
        "RunNotFound",
        "RunExists",
        "RunClosed",
        "DuplicateAppend",
        "TooManyRuns",
        "LeaseError",
        "LeaseHeld",
        "LeaseLost",
        "StoreError",
        "RedisUnavailable",
        "JournalError",
        "UnknownProvider",
        "ChatRequestError",  # the relay's request bodies: exported from midstream.relay.adapters
        "RunAgentInputError",
        "RequestRejected",  # what the simulator refuses: exported from midstream.wire.request
        "VersionConflict",  # the workflow's: exported from midstream.workflow
        "HandoffFailed",
    }


# -- renamed names still work for one release, and warn ----------------------------------------------

RENAMED = [
    ("midstream", "MidStreamError", "StreamInterrupted"),
    ("midstream", "MidStreamTimeout", "StreamInterruptedByTimeout"),
    ("midstream", "EventStreamError", "EventStreamFrameError"),
    ("midstream.client.errors", "MidStreamError", "StreamInterrupted"),
    ("midstream.client.errors", "MidStreamTimeout", "StreamInterruptedByTimeout"),
    ("midstream.errors", "EventStreamError", "EventStreamFrameError"),
    ("midstream.agent.effects", "EffectUncertain", "EffectUncertainError"),
]


@pytest.mark.parametrize(("module_name", "old", "new"), RENAMED)
def test_an_old_name_is_the_new_class_and_warns(module_name: str, old: str, new: str) -> None:
    module = importlib.import_module(module_name)
    namespace: dict[str, object] = {}
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: it is now called {new}") as caught:
        exec(f"from {module_name} import {old}", namespace)
    assert namespace[old] is getattr(module, new)
    assert caught[0].filename == "<string>"  # the line that used the old name
    assert old not in getattr(module, "__all__", [])


def test_a_new_name_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from midstream import StreamInterrupted  # noqa: F401


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    import midstream.client.errors as client_errors

    with pytest.raises(AttributeError, match="has no attribute 'MidStreamErr'"):
        _ = client_errors.MidStreamErr  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = midstream.Nope  # type: ignore[attr-defined]


def test_value_error_compatibility() -> None:
    # json.loads users catch ValueError; an unknown name is a bad value too.
    assert issubclass(JSONError, ValueError)
    assert issubclass(InvalidJSON, ValueError)
    assert issubclass(UnknownDialect, ValueError)
    assert not issubclass(RemoteProtocolError, ValueError)


def test_every_exception_in_the_module_is_in_the_tree() -> None:
    classes = {
        obj
        for obj in vars(errors_module).values()
        if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == errors_module.__name__
    }
    assert classes == set(PARENT) | {MidstreamError}


def test_the_tree_drawn_in_the_docstring_matches_the_classes() -> None:
    drawn = {name: parent for name, (parent, module) in _drawing().items() if module == "midstream.errors"}
    assert drawn.pop("MidstreamError") is None
    assert drawn == {cls.__name__: parent.__name__ for cls, parent in PARENT.items()}


def test_limit_exceeded_carries_its_bound() -> None:
    exc = LimitExceeded("line too long", limit="max_line", value=10)
    assert (exc.limit, exc.value, str(exc)) == ("max_line", 10, "line too long")


def test_timeline_error_carries_state_and_event_kind() -> None:
    exc = TimelineError("no", state="idle", event_kind="text_delta")
    assert (exc.state, exc.event_kind, str(exc)) == ("idle", "text_delta", "no")


def test_json_error_carries_position_and_reason() -> None:
    exc = InvalidJSON("unexpected character", position=7, reason="'x' cannot start a value")
    assert (exc.position, exc.reason) == (7, "'x' cannot start a value")
    assert str(exc) == "unexpected character at position 7: 'x' cannot start a value"
    assert isinstance(IncompleteJSON("eof", position=3, reason="object not closed"), JSONError)


def test_unknown_dialect_from_the_registry() -> None:
    with pytest.raises(UnknownDialect, match="no-such-provider"):
        wire.decoder("no-such-provider")
    with pytest.raises(UnknownDialect):
        wire.encoder("no-such-provider")


# -- classify_error ---------------------------------------------------------------------------------

BY_TYPE = [
    # Anthropic
    ("overloaded_error", "overloaded", True),
    ("rate_limit_error", "rate_limited", True),
    ("api_error", "server", True),
    ("timeout_error", "timeout", True),
    ("invalid_request_error", "invalid_request", False),
    ("request_too_large", "invalid_request", False),
    ("authentication_error", "auth", False),
    ("permission_error", "permission", False),
    ("not_found_error", "not_found", False),
    ("billing_error", "quota", False),
    # OpenAI
    ("server_error", "server", True),
    ("rate_limit_exceeded", "rate_limited", True),
    ("insufficient_quota", "quota", False),
    ("invalid_api_key", "auth", False),
    # Gemini (google.rpc status names)
    ("UNAVAILABLE", "overloaded", True),
    ("RESOURCE_EXHAUSTED", "rate_limited", True),
    ("INTERNAL", "server", True),
    ("DEADLINE_EXCEEDED", "timeout", True),
    ("INVALID_ARGUMENT", "invalid_request", False),
    ("FAILED_PRECONDITION", "invalid_request", False),
    ("UNAUTHENTICATED", "auth", False),
    ("PERMISSION_DENIED", "permission", False),
    ("NOT_FOUND", "not_found", False),
    # Ollama / generic
    ("overloaded", "overloaded", True),
    # Bedrock exception names
    ("ThrottlingException", "rate_limited", True),
    ("ServiceUnavailableException", "overloaded", True),
    ("InternalServerException", "server", True),
    ("ModelStreamErrorException", "server", True),
    ("ModelTimeoutException", "timeout", True),
    ("ValidationException", "invalid_request", False),
    ("AccessDeniedException", "permission", False),
]


@pytest.mark.parametrize(("error_type", "kind", "retryable"), BY_TYPE)
def test_classify_by_type(error_type: str, kind: str, retryable: bool) -> None:
    assert classify_error(error_type) == (kind, retryable)
    # matching is case-insensitive
    assert classify_error(error_type.upper()) == (kind, retryable)
    assert classify_error(error_type.lower()) == (kind, retryable)


BY_STATUS = [
    (408, "timeout", True),
    (504, "timeout", True),
    (429, "rate_limited", True),
    (503, "overloaded", True),
    (529, "overloaded", True),
    (500, "server", True),
    (502, "server", True),
    (599, "server", True),
    (401, "auth", False),
    (403, "permission", False),
    (404, "not_found", False),
    (400, "invalid_request", False),
    (413, "invalid_request", False),
    (422, "invalid_request", False),
    (200, "unknown", False),
    (302, "unknown", False),
]


@pytest.mark.parametrize(("status", "kind", "retryable"), BY_STATUS)
def test_classify_by_status(status: int, kind: str, retryable: bool) -> None:
    assert classify_error(None, status) == (kind, retryable)
    assert classify_error("", status) == (kind, retryable)
    # an unknown type string defers to the status
    assert classify_error("some_new_error", status) == (kind, retryable)


def test_a_known_type_wins_over_the_status() -> None:
    assert classify_error("overloaded_error", 500) == ("overloaded", True)
    assert classify_error("invalid_request_error", 503) == ("invalid_request", False)
    assert classify_error("rate_limit_error", 400) == ("rate_limited", True)


def test_unknown_errors_are_not_retried() -> None:
    assert classify_error(None) == ("unknown", False)
    assert classify_error("brand_new_error") == ("unknown", False)
    assert classify_error("brand_new_error", None) == ("unknown", False)
