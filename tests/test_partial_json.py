"""PartialJSON: conformance (JSONTestSuite), honest previews on every prefix, limits, linear work."""

from __future__ import annotations

import copy
import functools
import itertools
import json
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import midstream.core.partial_json as pj
from midstream.core.partial_json import (
    ContainerEnd,
    ContainerStart,
    JsonEvent,
    JsonPath,
    Key,
    PartialJSON,
    StringDelta,
    StringStart,
    ValueComplete,
)
from midstream.errors import IncompleteJSON, InvalidJSON, JSONError, LimitExceeded, LocalError
from wiresupport import CONFORMANCE

SUITE = CONFORMANCE / "JSONTestSuite" / "test_parsing"
CASES = sorted(p.name for p in SUITE.iterdir() if p.suffix == ".json")
# With a duplicated key, a path's value is replaced by the later member (as json.loads does), so "a value
# reported complete never changes at its path" does not hold for these two documents by design.
DUPLICATE_KEYS = {"y_object_duplicated_key.json", "y_object_duplicated_key_and_value.json"}


def suite_text(name: str) -> str:
    # Files that are not UTF-8 are all n_ or i_ cases; undecodable bytes become lone surrogates.
    return (SUITE / name).read_bytes().decode("utf-8", "surrogateescape")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def parse(pieces: list[str] | Iterator[str], **options: Any) -> tuple[str, Any]:
    """("ok", value) or ("rejected", error) for a document fed in ``pieces``."""
    parser = PartialJSON(**options)
    try:
        for piece in pieces:
            parser.feed(piece)
        return "ok", parser.finish()
    except (JSONError, LimitExceeded) as exc:
        return "rejected", exc


def chars(text: str) -> list[str]:
    return list(text)


# -- JSONTestSuite ----------------------------------------------------------------------------------


def test_suite_has_the_expected_cases() -> None:
    counts = {prefix: sum(name.startswith(prefix) for name in CASES) for prefix in ("y_", "n_", "i_")}
    assert counts == {"y_": 95, "n_": 188, "i_": 35}


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("y_")])
def test_y_cases_are_accepted_and_equal_json_loads(name: str) -> None:
    text = suite_text(name)
    expected = strict_loads(text)
    for pieces in ([text], chars(text)):
        verdict, value = parse(pieces)
        assert verdict == "ok", value
        # repr also tells int from float, -0.0 from 0.0 and key order apart
        assert repr(value) == repr(expected)


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("n_")])
def test_n_cases_are_rejected(name: str) -> None:
    text = suite_text(name)
    whole, error = parse([text])
    assert whole == "rejected"
    assert isinstance(error, JSONError | LimitExceeded)
    bytewise, error2 = parse(chars(text))
    assert bytewise == "rejected"
    assert type(error2) is type(error)
    # without the depth bound the deep ones are still rejected, as incomplete documents (no events:
    # an event's path is as long as its depth, which would make 100,000 levels quadratic)
    assert parse([text], max_depth=None, events=False)[0] == "rejected"


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("i_")])
def test_i_cases_give_one_verdict_however_fed(name: str) -> None:
    text = suite_text(name)
    whole = parse([text])
    bytewise = parse(chars(text))
    assert whole[0] == bytewise[0]
    if whole[0] == "ok":
        assert repr(whole[1]) == repr(bytewise[1]) == repr(strict_loads(text))


def test_n_cases_fail_where_expected() -> None:
    assert isinstance(parse(chars(suite_text("n_structure_100000_opening_arrays.json")))[1], LimitExceeded)
    assert isinstance(parse([suite_text("n_array_extra_comma.json")])[1], InvalidJSON)
    assert isinstance(parse([suite_text("n_structure_unclosed_array.json")])[1], IncompleteJSON)


# -- previews on every prefix -----------------------------------------------------------------------


def at_path(value: Any, path: JsonPath) -> Any:
    for step in path:
        value = value[step]
    return value


def leaves(value: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, Any]]:
    """Every (path, value) of ``value``, containers included, without recursion."""
    stack: list[tuple[JsonPath, Any]] = [(path, value)]
    while stack:
        p, v = stack.pop()
        yield p, v
        if isinstance(v, dict):
            stack.extend(((*p, k), x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend(((*p, i), x) for i, x in enumerate(v))


def check_prefixes(pieces: list[str], final: Any, *, same_path_values: bool = True) -> list[JsonEvent]:
    """Feed ``pieces``; after each one check every preview rule. Returns all events."""
    parser = PartialJSON()
    reported: dict[JsonPath, Any] = {}
    events: list[JsonEvent] = []
    previous: list[tuple[Any, Any]] = []
    for piece in pieces:
        new = parser.feed(piece)
        events.extend(new)
        for ev in new:
            if isinstance(ev, ValueComplete | ContainerEnd):
                reported[ev.path] = copy.deepcopy(ev.value)
        snap = parser.snapshot()  # never raises
        previous.append((snap, copy.deepcopy(snap)))
        if snap is None and not parser.is_complete(()):
            continue  # nothing shown yet
        for path, value in leaves(snap):
            complete = parser.is_complete(path)
            if isinstance(value, str) and not complete:
                expected = at_path(final, path) if same_path_values else value
                assert isinstance(expected, str) and expected.startswith(value), (path, value)
            elif not isinstance(value, dict | list):
                # no number that may still grow, no literal that is not whole
                assert complete, (path, value)
            if complete and same_path_values:
                assert value == at_path(final, path), path
        for path, value in reported.items():
            if same_path_values:
                assert parser.is_complete(path), path
                assert at_path(parser.snapshot(), path) == value == at_path(final, path), path
    for snap, frozen in previous:
        assert snap == frozen  # a snapshot never changes afterwards
    assert parser.finish() == final
    return events


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("y_")])
def test_every_prefix_of_y_cases_is_an_honest_preview(name: str) -> None:
    text = suite_text(name)
    check_prefixes(chars(text), strict_loads(text), same_path_values=name not in DUPLICATE_KEYS)


# Random documents: values, whitespace between tokens, escapes (ASCII-only or raw), random splits.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=40,
)
whitespace = st.text(alphabet=" \t\n\r", max_size=2)


@st.composite
def documents(draw: st.DrawFn) -> tuple[Any, str]:
    value = draw(json_values)
    ascii_only = draw(st.booleans())

    def ws() -> str:
        return draw(whitespace)

    def write(v: Any) -> str:
        if isinstance(v, dict):
            members = [
                f"{ws()}{json.dumps(k, ensure_ascii=ascii_only)}{ws()}:{ws()}{write(x)}{ws()}"
                for k, x in v.items()
            ]
            return "{" + ",".join(members) + ws() + "}"
        if isinstance(v, list):
            return "[" + ",".join(f"{ws()}{write(x)}{ws()}" for x in v) + ws() + "]"
        return json.dumps(v, ensure_ascii=ascii_only)

    return value, ws() + write(value) + ws()


def splits(data: st.DataObject, text: str) -> list[str]:
    cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=30)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=80, deadline=None)
@given(doc=documents(), data=st.data())
def test_random_documents_in_random_splits(doc: tuple[Any, str], data: st.DataObject) -> None:
    value, text = doc
    assert strict_loads(text) == value
    pieces = splits(data, text)
    events = check_prefixes(pieces, value)
    assert_events_consistent(events, value, text)
    assert merged(events) == merged(PartialJSON().feed(text))  # any split: the same events


@settings(max_examples=40, deadline=None)
@given(doc=documents())
def test_random_documents_char_by_char(doc: tuple[Any, str]) -> None:
    value, text = doc
    events = check_prefixes(chars(text), value)
    assert_events_consistent(events, value, text)


def merged(events: list[JsonEvent]) -> list[JsonEvent]:
    """Events with adjacent string deltas of one path joined (splits only change how text is cut)."""
    out: list[JsonEvent] = []
    for ev in events:
        if (
            isinstance(ev, StringDelta)
            and out
            and isinstance(out[-1], StringDelta)
            and out[-1].path == ev.path
        ):
            out[-1] = StringDelta(ev.path, out[-1].text + ev.text)
        else:
            out.append(ev)
    return out


def assert_events_consistent(events: list[JsonEvent], final: Any, text: str) -> None:
    texts: dict[JsonPath, str] = {}
    open_paths: list[JsonPath] = []
    completed = 0
    for ev in events:
        if isinstance(ev, StringStart):
            texts[ev.path] = ""
        elif isinstance(ev, StringDelta):
            texts[ev.path] += ev.text
        elif isinstance(ev, ValueComplete):
            assert repr(ev.value) == repr(at_path(final, ev.path))
            if isinstance(ev.value, str):
                assert texts.pop(ev.path) == ev.value
            completed += 1
        elif isinstance(ev, ContainerStart):
            open_paths.append(ev.path)
            assert ev.type == ("object" if isinstance(at_path(final, ev.path), dict) else "array")
        elif isinstance(ev, ContainerEnd):
            assert open_paths.pop() == ev.path
            assert ev.value == at_path(final, ev.path)
            completed += 1
        elif isinstance(ev, Key):
            assert ev.path[-1] == ev.key and ev.key in at_path(final, ev.path[:-1])
    assert not texts and not open_paths
    # every value completes exactly once; a top-level number that ends the text only at finish()
    at_finish = isinstance(final, int | float) and not isinstance(final, bool) and text[-1:].isdigit()
    assert completed == sum(1 for _ in leaves(final)) - at_finish


# -- previews, in detail ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "preview", "complete_root"),
    [
        ("", None, False),
        ("  ", None, False),
        ("12", None, False),  # may still grow
        ("tru", None, False),  # not fabricated
        ('"ab', "ab", False),
        ('"ab"', "ab", True),
        ("[1, 2", [1], False),
        ("[1, 2,", [1, 2], False),
        ("[1, tr", [1], False),
        ('{"a": tru', {}, False),
        ('{"a": 12', {}, False),
        ('{"a": 12,', {"a": 12}, False),
        ('{"ke', {}, False),
        ('{"key"', {}, False),
        ('{"key":', {}, False),
        ('{"a": "hel', {"a": "hel"}, False),
        ('{"a": [1, {"b": "x', {"a": [1, {"b": "x"}]}, False),
        ('{"a": [1, {"b": "x"}]', {"a": [1, {"b": "x"}]}, False),
        ('{"a": "\\u00', {"a": ""}, False),  # a cut escape shows nothing yet
        ('{"a": "x\\', {"a": "x"}, False),
        ('{"a": "\\ud83d', {"a": ""}, False),  # half a surrogate pair is held back
        ('{"a": "\\ud83d\\ude00', {"a": "\U0001f600"}, False),
        ('{"a": null}', {"a": None}, True),
        ("null ", None, True),
        # containers cut where a lazy parser keeps the text and previews a closed copy of it
        ("[1 ", [1], False),
        ("[1, [2, tru", [1, [2]], False),
        ("[1, [2, true", [1, [2, True]], False),
        ("[[], {", [[], {}], False),
        ('{"a": 1, "b"', {"a": 1}, False),
        ('{"a": 1, "b":', {"a": 1}, False),
        ('{"a": 1, "b": -', {"a": 1}, False),
        ('{"a": 1, "b": 2.5e', {"a": 1}, False),
        ('{"a": 1, "b": {"c": [], "d"', {"a": 1, "b": {"c": []}}, False),
        ('{"a": {"b": "x"}, "c": "[{', {"a": {"b": "x"}, "c": "[{"}, False),
        ('[{"a": "}]"}, "', [{"a": "}]"}, ""], False),
    ],
)
def test_snapshot_shows_only_what_arrived(text: str, preview: Any, complete_root: bool) -> None:
    for options in ({}, *FAST_MODES):
        parser = PartialJSON(**options)
        parser.feed(text)
        assert repr(parser.snapshot()) == repr(preview), options
        assert parser.is_complete(()) is complete_root


def test_is_complete_per_path() -> None:
    parser = PartialJSON()
    parser.feed('{"a": [1, {"b": "x"}, 2')
    assert parser.is_complete(("a", 0))
    assert parser.is_complete(("a", 1))
    assert parser.is_complete(("a", 1, "b"))
    assert not parser.is_complete(("a", 2))  # 2 may become 23
    assert not parser.is_complete(("a",))
    assert not parser.is_complete(())
    assert not parser.is_complete(("zzz",))
    assert not parser.is_complete(("a", "0"))  # wrong key type
    parser.feed("]")
    assert parser.is_complete(("a", 2)) and parser.is_complete(("a",))
    assert not parser.is_complete(())
    parser.feed("}")
    assert parser.is_complete(()) and parser.done


def test_a_snapshot_is_stable_and_shares_complete_values() -> None:
    parser = PartialJSON()
    parser.feed('{"done": {"x": [1]}, "list": [1, "t')
    first = parser.snapshot()
    assert parser.snapshot() is first  # nothing new: the same object
    parser.feed('ail", 3], "more": 1')
    assert first == {"done": {"x": [1]}, "list": [1, "t"]}
    second = parser.snapshot()
    assert second == {"done": {"x": [1]}, "list": [1, "tail", 3]}
    assert second["done"] is first["done"]  # complete sub-values are shared, not copied


def test_top_level_number_completes_at_finish() -> None:
    parser = PartialJSON()
    events = parser.feed("-12.5e")
    assert events == [] and parser.snapshot() is None
    parser.feed("3")
    assert parser.finish() == -12.5e3
    assert parser.is_complete(())


def test_events_of_a_small_document() -> None:
    events = PartialJSON().feed('{"k": ["s", 1, true, {}], "n": null}')
    assert events == [
        ContainerStart((), "object"),
        Key(("k",), "k"),
        ContainerStart(("k",), "array"),
        StringStart(("k", 0)),
        StringDelta(("k", 0), "s"),
        ValueComplete(("k", 0), "s"),
        ValueComplete(("k", 1), 1),
        ValueComplete(("k", 2), True),
        ContainerStart(("k", 3), "object"),
        ContainerEnd(("k", 3), {}),
        ContainerEnd(("k",), ["s", 1, True, {}]),
        Key(("n",), "n"),
        ValueComplete(("n",), None),
        ContainerEnd((), {"k": ["s", 1, True, {}], "n": None}),
    ]


def test_string_deltas_type_a_field_out() -> None:
    parser = PartialJSON()
    got = [parser.feed(p) for p in ['{"content": "line 1', "\\nline", ' 2"}']]
    assert got[0][-1] == StringDelta(("content",), "line 1")
    assert got[1] == [StringDelta(("content",), "\nline")]
    assert got[2][:2] == [StringDelta(("content",), " 2"), ValueComplete(("content",), "line 1\nline 2")]


def test_no_events_mode_parses_the_same() -> None:
    parser = PartialJSON(events=False)
    assert parser.feed('{"a": ["x", 1') == []
    assert parser.snapshot() == {"a": ["x"]}
    parser.feed("]}")
    assert parser.finish() == {"a": ["x", 1]}


# -- escapes and surrogates split anywhere ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"\\u00e9\\n\\t\\"\\\\\\/\\b\\f\\r"', '\u00e9\n\t"\\/\b\f\r'),
        ('"\\ud83d\\ude00"', "\U0001f600"),
        ('"a\\ud83d\\ude00b\\uD834\\uDD1E"', "a\U0001f600b\U0001d11e"),
        ('"\\ud83d\\u0041"', "\ud83dA"),  # a lone high surrogate stays lone, as with json.loads
        ('"\\ud83d"', "\ud83d"),
        ('"\\ud83d\\ud83d\\ude00"', "\ud83d\U0001f600"),
        ('"\\ude00\\ud83d"', "\ude00\ud83d"),
        ('"\\\\ud83d\\ude00"', "\\ud83d\ude00"),  # an escaped backslash, not an escape
        ('"\\\\\\ud83d\\ude00"', "\\\U0001f600"),
    ],
)
def test_escapes_split_at_every_position(text: str, expected: str) -> None:
    assert strict_loads(text) == expected
    for cut in range(len(text) + 1):
        for cut2 in range(cut, len(text) + 1):
            parser = PartialJSON()
            for piece in (text[:cut], text[cut:cut2], text[cut2:]):
                parser.feed(piece)
                preview = parser.snapshot()
                assert preview is None or expected.startswith(preview)
            assert parser.finish() == expected


@pytest.mark.parametrize("options", [{}, {"events": False}, {"events": False, "lazy": True}])
@pytest.mark.parametrize(
    "text",
    [
        '"\\u00e9\\n\\t\\"\\\\\\/\\b\\f\\r"',
        '"a\\ud83d\\ude00b\\uD834\\uDD1E"',
        '"\\ud83d\\u0041\\ud83d"',
        '"\\\\ud83d\\\\\\ud83d\\ude00"',
    ],
)
def test_a_string_value_continued_across_cut_escapes(text: str, options: dict[str, Any]) -> None:
    """More text of an open string value takes a shorter road than the token reader: cut anywhere
    (twice), every preview is the token reader's, and the string deltas concatenate to the value."""
    doc = '{"k": ' + text + "}"
    expected = strict_loads(doc)
    for cut in range(7, len(doc) + 1):
        for cut2 in range(cut, len(doc) + 1):
            parser = PartialJSON(**options)
            deltas: list[str] = []
            seen = ""
            for piece in (doc[:cut], doc[cut:cut2], doc[cut2:]):
                deltas += [e.text for e in parser.feed(piece) if isinstance(e, StringDelta)]
                seen += piece
                assert repr(parser.snapshot()) == repr(reference_snapshot(seen)[0]), (seen, options)
            assert parser.finish() == expected
            if options.get("events", True):
                assert "".join(deltas) == expected["k"]


@pytest.mark.parametrize("options", [{}, {"events": False}, {"events": False, "lazy": True}])
@pytest.mark.parametrize(
    ("bad", "position", "reason"),
    [
        ("\\x", 11, "invalid escape"),
        ("\\u12g4", 11, "invalid escape"),
        ("a\nb", 12, "control character in string"),
    ],
)
def test_bad_content_continuing_a_string_fails_where_it_is(
    bad: str, position: int, reason: str, options: dict[str, Any]
) -> None:
    parser = PartialJSON(**options)
    parser.feed('{"k": "ab')
    parser.snapshot()
    parser.feed("cd")
    with pytest.raises(InvalidJSON) as first:
        parser.feed(bad)
        parser.snapshot()
    assert (first.value.position, first.value.reason) == (position, reason)
    with pytest.raises(InvalidJSON) as again:
        parser.feed("more")
        parser.snapshot()
    assert again.value is first.value


@pytest.mark.parametrize(
    "text", ["0", "-0", "-0.0", "1.5", "1e5", "1E+5", "-2.5e-3", "12345678901234567890123"]
)
def test_numbers_split_at_every_position(text: str) -> None:
    expected = strict_loads(text)
    for doc, path in ((text, ()), (f'{{"k": {text}}}', ("k",)), (f"[{text}]", (0,))):
        for cut in range(len(doc) + 1):
            parser = PartialJSON()
            parser.feed(doc[:cut])
            parser.feed(doc[cut:])
            assert repr(at_path(parser.finish(), path)) == repr(expected)


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("[1,]", 3, "trailing comma"),
        ('{"a": 1,}', 8, "trailing comma"),
        ('{"a" 1}', 5, "expected ':'"),
        ("[01]", 2, "expected ',' or ']'"),
        ("[1 2]", 3, "expected ',' or ']'"),
        ('{"a": 1]', 7, "expected ',' or '}'"),
        ("[NaN]", 1, "NaN and Infinity are not JSON"),
        ("[-Infinity]", 2, "expected a digit"),
        ("[1.]", 3, "expected a digit"),
        ("[tRue]", 2, "expected 'true'"),
        ('["a\x01"]', 3, "control character in string"),
        ('["\\q"]', 2, "invalid escape"),
        ('["\\u12G4"]', 2, "invalid escape"),
        ("1 2", 2, "extra data after the top-level value"),
        ("{} x", 3, "extra data after the top-level value"),
        ("// c\n1", 0, "expected a value"),
        ("{'a': 1}", 1, "expected a string key or '}'"),
    ],
)
def test_invalid_json_has_position_and_reason(text: str, position: int, reason: str) -> None:
    for pieces in ([text], chars(text)):
        verdict, error = parse(pieces)
        assert verdict == "rejected" and isinstance(error, InvalidJSON)
        assert (error.position, error.reason) == (position, reason)


def test_invalid_json_is_raised_at_once_and_the_parser_stays_failed() -> None:
    parser = PartialJSON()
    parser.feed('{"a": ')
    with pytest.raises(InvalidJSON) as first:
        parser.feed("[1,]")
    assert first.value.position == 9
    with pytest.raises(InvalidJSON) as again:
        parser.feed("2}")
    assert again.value is first.value
    with pytest.raises(InvalidJSON):
        parser.finish()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty document"),
        (" \n", "expected a value"),
        ('{"a": 1', "expected ',' or '}'"),
        ('{"a":', "expected a value"),
        ('["ab', "unterminated string"),
        ('{"ab', "unterminated object key"),
        ("[12", "expected ',' or ']'"),  # the end of the text ends the number
        ("[1.", "unterminated number"),
        ("-", "unterminated number"),
        ("[nul", "unterminated literal"),
        ('"\\u00', "unterminated string"),
    ],
)
def test_truncated_documents_are_incomplete_at_finish(text: str, reason: str) -> None:
    parser = PartialJSON()
    parser.feed(text)
    with pytest.raises(IncompleteJSON) as info:
        parser.finish()
    assert (info.value.position, info.value.reason) == (len(text), reason)
    with pytest.raises(IncompleteJSON):
        parser.finish()


def test_feed_after_finish_is_a_local_error() -> None:
    parser = PartialJSON()
    parser.feed("[]")
    assert parser.finish() == [] and parser.finish() == []
    with pytest.raises(LocalError):
        parser.feed(" ")


# -- limits -----------------------------------------------------------------------------------------


def test_deep_nesting_hits_the_default_depth_limit() -> None:
    parser = PartialJSON()
    with pytest.raises(LimitExceeded) as info:
        parser.feed("[" * 100_000)
    assert (info.value.limit, info.value.value) == ("max_depth", 1000)
    with pytest.raises(LimitExceeded):
        parser.feed("]")


def test_no_recursion_limit_without_a_depth_bound() -> None:
    depth = 100_000
    assert depth > sys.getrecursionlimit() * 10
    parser = PartialJSON(max_depth=None, events=False)
    parser.feed("[" * depth + '"x')
    preview = parser.snapshot()
    assert not parser.is_complete((0,) * 50)
    parser.feed('"' + "]" * depth)
    assert parser.is_complete((0,) * 50)
    for value in (preview, parser.finish()):
        for _ in range(depth):
            assert isinstance(value, list) and len(value) == 1
            value = value[0]
        assert value == "x"


def test_size_limit_counts_utf8_bytes() -> None:
    parser = PartialJSON(max_bytes=6)
    parser.feed('"éé"')  # 4 characters, 6 bytes
    with pytest.raises(LimitExceeded) as info:
        parser.feed(" ")
    assert (info.value.limit, info.value.value) == ("max_bytes", 6)
    assert parse(['"abc"'], max_bytes=5)[0] == "ok"
    assert isinstance(parse(['"abcd"'], max_bytes=5)[1], LimitExceeded)


def test_huge_integers_beyond_the_interpreter_limit_are_a_limit_error() -> None:
    digits = sys.get_int_max_str_digits()
    if digits == 0:
        pytest.skip("no int digit limit in this interpreter")
    error = parse(["[" + "1" * (digits + 1) + "]"])[1]
    assert isinstance(error, LimitExceeded) and error.limit == "int_max_str_digits"
    assert parse(["1" * digits])[1] == int("1" * digits)


# -- work is linear in the input --------------------------------------------------------------------


def file_write_doc(size: int) -> str:
    line = 'def f(x):\n    return "a\\tb" + x  # \u00e9\n'
    return json.dumps({"path": "a.py", "content": line * (size // 45)})


def structured_doc(size: int) -> str:
    item = {"id": 1, "title": "check login", "tags": ["a", "b"], "ok": True, "w": 0.5, "n": None}
    return json.dumps({"cases": [dict(item, id=i) for i in range(size // 95)]})


class WorkCounter:
    """Counts Python and builtin calls, and the characters the parser's regexes were allowed to scan."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.scanned = 0
        for name in ("_STR_RUN", "_WS", "_NUMBER", "_PARTIAL_ESCAPE", "_HIGH_SURROGATE"):
            monkeypatch.setattr(pj, name, self._wrap(getattr(pj, name)))
        # the C decoders: counted as if they read to the end of the text they are given
        monkeypatch.setattr(pj, "_scanstring", self._wrap_call(pj._scanstring))
        for unique, scan in list(pj._SCANNERS.items()):
            if scan is not None:
                monkeypatch.setitem(pj._SCANNERS, unique, self._wrap_call(scan))

    def _wrap_call(self, function: Callable[[str, int], Any]) -> Callable[[str, int], Any]:
        def counted(text: str, pos: int) -> Any:
            self.scanned += len(text) - pos
            return function(text, pos)

        return counted

    def _wrap(self, pattern: Any) -> Any:
        counter = self

        class Counted:
            def match(self, text: str, pos: int = 0) -> Any:
                counter.scanned += len(text) - pos
                return pattern.match(text, pos)

        return Counted()

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            self.calls += 1

    def run(self, work: Callable[[], None]) -> int:
        self.calls = self.scanned = 0
        sys.setprofile(self._profile)
        try:
            work()
        finally:
            sys.setprofile(None)
        return self.calls + self.scanned


def feed_all(doc: str, delta: int) -> Callable[[], None]:
    def work() -> None:
        parser = PartialJSON()
        for i in range(0, len(doc), delta):
            parser.feed(doc[i : i + delta])
        parser.finish()

    return work


def reparse_each(doc: str, delta: int) -> Callable[[], None]:
    """What the measure must catch: parsing the whole buffer again for every delta."""

    def work() -> None:
        for end in range(delta, len(doc) + delta, delta):
            PartialJSON(events=False).feed(doc[:end])

    return work


@pytest.mark.parametrize("make", [file_write_doc, structured_doc])
def test_work_per_delta_does_not_grow_with_the_document(
    make: Callable[[int], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = WorkCounter(monkeypatch)
    small, large = make(16_000), make(256_000)
    ratio = len(large) / len(small)
    work_small = counter.run(feed_all(small, 16))
    work_large = counter.run(feed_all(large, 16))
    assert work_large / work_small < ratio * 1.1
    # the same measure on a re-parse per delta grows quadratically: it can tell the two apart
    tiny, four = make(2_000), make(8_000)
    regrowth = counter.run(reparse_each(four, 64)) / counter.run(reparse_each(tiny, 64))
    assert regrowth > (len(four) / len(tiny)) * 2.5


def previews_every(doc: str, delta: int, every: int) -> Callable[[], None]:
    """Lazy parsing with a preview after every ``every`` deltas (a display's cadence)."""

    def work() -> None:
        parser = PartialJSON(events=False, lazy=True)
        for k, i in enumerate(range(0, len(doc), delta)):
            parser.feed(doc[i : i + delta])
            if k % every == 0:
                parser.snapshot()
        parser.finish()

    return work


@pytest.mark.parametrize("make", [file_write_doc, structured_doc])
def test_lazy_previews_work_does_not_grow_with_the_document(
    make: Callable[[int], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = WorkCounter(monkeypatch)
    small, large = make(16_000), make(256_000)
    ratio = len(large) / len(small)
    for every in (1, 16):
        work_small = counter.run(previews_every(small, 16, every))
        work_large = counter.run(previews_every(large, 16, every))
        assert work_large / work_small < ratio * 1.1, every


def test_snapshot_cost_does_not_depend_on_closed_content() -> None:
    parser = PartialJSON()
    parser.feed(
        '{"done": [' + ",".join(['{"x": "' + "y" * 50 + '"}'] * 5000) + '], "open": {"a": 1, "s": "ab'
    )
    preview = parser.snapshot()
    parser.feed("c")
    again = parser.snapshot()
    assert again["done"] is preview["done"]  # 5000 closed objects: shared, not rebuilt
    assert again["open"] == {"a": 1, "s": "abc"}


def test_random_splits_of_a_large_document_agree() -> None:
    doc = file_write_doc(20_000)[:-1] + ', "more": ' + structured_doc(20_000) + "}"
    expected = strict_loads(doc)
    rng = random.Random(7)
    for _ in range(5):
        parser = PartialJSON(events=False)
        i = 0
        while i < len(doc):
            step = rng.randint(1, 40)
            parser.feed(doc[i : i + step])
            i += step
        assert parser.finish() == expected


# -- fast paths: whole containers in C, lazy parsing; the same previews and the same errors ---------


def reference_snapshot(prefix: str) -> tuple[Any, bool]:
    """The preview of ``prefix`` built from scratch, token by token (events on: no C scanner)."""
    parser = PartialJSON()
    parser.feed(prefix)
    return parser.snapshot(), parser.is_complete(())


FAST_MODES: list[dict[str, Any]] = [{"events": False}, {"events": False, "lazy": True}]


def assert_previews_match_reference(pieces: list[str], final: Any, **options: Any) -> None:
    parser = PartialJSON(**options)
    seen = ""
    kept: list[tuple[Any, Any]] = []
    for piece in pieces:
        parser.feed(piece)
        seen += piece
        snap = parser.snapshot()
        expected, complete = reference_snapshot(seen)
        assert repr(snap) == repr(expected), (seen, options)
        assert parser.is_complete(()) == complete
        kept.append((snap, copy.deepcopy(snap)))
    assert repr(parser.finish()) == repr(final)
    for snap, frozen in kept:
        assert snap == frozen  # a snapshot never changes afterwards


@settings(max_examples=60, deadline=None)
@given(doc=documents(), data=st.data())
def test_fast_modes_preview_every_prefix_like_the_token_path(
    doc: tuple[Any, str], data: st.DataObject
) -> None:
    value, text = doc
    pieces = splits(data, text)
    for options in FAST_MODES:
        assert_previews_match_reference(pieces, value, **options)


@settings(max_examples=25, deadline=None)
@given(doc=documents())
def test_fast_modes_preview_every_char_like_the_token_path(doc: tuple[Any, str]) -> None:
    value, text = doc
    for options in FAST_MODES:
        assert_previews_match_reference(chars(text), value, **options)


def test_fast_modes_preview_a_structured_document_like_the_token_path() -> None:
    text = structured_doc(3_000)
    rng = random.Random(3)
    cuts = sorted(rng.sample(range(1, len(text)), 120))
    pieces = [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]
    for options in FAST_MODES:
        assert_previews_match_reference(pieces, strict_loads(text), **options)


def error_of(pieces: list[str], **options: Any) -> tuple[str, Any]:
    """The error as (type, position, reason), raised by feed or, lazily, by finish."""
    verdict, error = parse(pieces, **options)
    assert verdict == "rejected"
    return type(error).__name__, getattr(error, "position", None), getattr(error, "reason", None)


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("n_")])
def test_fast_modes_reject_n_cases_with_the_same_error(name: str) -> None:
    text = suite_text(name)
    expected = error_of([text], events=True)
    for options in FAST_MODES:
        assert error_of([text], **options) == expected, options


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("y_")])
def test_fast_modes_accept_y_cases_like_json_loads(name: str) -> None:
    text = suite_text(name)
    for options in FAST_MODES:
        verdict, value = parse([text], **options)
        assert verdict == "ok" and repr(value) == repr(strict_loads(text))


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ('[{"a": NaN}]', {}),
        ('[{"a": [1, -Infinity]}]', {}),
        ('{"a": {"k": 1, "k": 2}}', {"unique_keys": True}),
        ('[{"s": "a\x01"}]', {}),
        ("[[[[1]]]]", {"max_depth": 3}),
        ('[{"n": 01}]', {}),
    ],
)
def test_whole_containers_the_c_scanner_reads_are_still_checked_strictly(
    text: str, options: dict[str, Any]
) -> None:
    expected = error_of([text], events=True, **options)
    for fast in FAST_MODES:
        assert error_of([text], **fast, **options) == expected


def test_duplicate_keys_in_a_whole_container_keep_json_loads_semantics() -> None:
    text = '[{"k": 1, "j": 0, "k": 2}]'
    assert parse([text], events=False) == ("ok", json.loads(text))


def test_lazy_parsing_defers_errors_to_the_next_result() -> None:
    parser = PartialJSON(events=False, lazy=True)
    assert parser.feed('{"a": [1, 2') == []
    assert parser.feed("x]}") == []  # kept, not parsed yet
    with pytest.raises(InvalidJSON) as info:
        parser.snapshot()
    assert (info.value.position, info.value.reason) == (11, "expected ',' or ']'")
    for call in (parser.snapshot, parser.finish, lambda: parser.is_complete(()), lambda: parser.done):
        with pytest.raises(InvalidJSON):
            call()
    with pytest.raises(InvalidJSON):
        parser.feed("1")


def test_lazy_parsing_gives_the_same_results_when_asked() -> None:
    parser = PartialJSON(events=False, lazy=True)
    parser.feed('{"city": "Par')
    assert parser.snapshot() == {"city": "Par"}
    assert not parser.done and not parser.is_complete(("city",))
    parser.feed('is", "days": 3}')
    assert parser.done and parser.is_complete(("city",))
    assert parser.finish() == {"city": "Paris", "days": 3}
    with pytest.raises(LocalError):
        parser.feed(" ")


def test_lazy_parsing_checks_the_size_bound_when_it_parses() -> None:
    parser = PartialJSON(events=False, lazy=True, max_bytes=5)
    parser.feed('"abcdef"')
    with pytest.raises(LimitExceeded):
        parser.snapshot()
    with pytest.raises(LimitExceeded):
        parser.feed(" ")


def test_lazy_parsing_needs_events_off() -> None:
    with pytest.raises(ValueError, match="events=False"):
        PartialJSON(lazy=True)


@pytest.mark.parametrize("options", [{}, *FAST_MODES])
def test_mutating_a_snapshot_cannot_change_later_ones(options: dict[str, Any]) -> None:
    """The contract: the containers on the open path are new in every snapshot, so changing them
    does not reach the parser; complete values are shared (documented: do not mutate them)."""
    text = '{"done": {"x": 1}, "list": [1, 2, {"y": "ab'
    parser = PartialJSON(**options)
    parser.feed(text)
    first = parser.snapshot()
    first["extra"] = True
    first["list"].append("bogus")
    first["list"][2]["y"] = "changed"
    first["list"][2]["z"] = 0
    del first["done"]
    parser.feed('c"}], "n": 5}')
    assert parser.snapshot() == parser.finish() == json.loads(text + 'c"}], "n": 5}')


@pytest.mark.parametrize(
    "text",
    ["[,", "[1,,", '{"a" 1', '{"a": 1 "b', "[1, 2 3", '{"a": 1, "a": 2', '[{"a":: 1', "[-x", "[01", '{, "a"'],
)
def test_a_cut_container_that_cannot_be_valid_fails_the_lazy_preview(text: str) -> None:
    eager = PartialJSON(events=False, unique_keys=True)
    with pytest.raises(InvalidJSON) as expected:
        eager.feed(text)
    lazy = PartialJSON(events=False, lazy=True, unique_keys=True)
    lazy.feed(text)
    with pytest.raises(InvalidJSON) as got:
        lazy.snapshot()
    assert (got.value.position, got.value.reason) == (expected.value.position, expected.value.reason)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", repr of the result) or the error as (type name, (position, reason))."""
    try:
        return "ok", repr(call())
    except (JSONError, LimitExceeded) as exc:
        return type(exc).__name__, (getattr(exc, "position", None), getattr(exc, "reason", None))


def feed_and_preview(parser: PartialJSON, piece: str) -> Any:
    parser.feed(piece)
    return parser.snapshot()


@settings(max_examples=80, deadline=None)
@given(doc=documents(), data=st.data())
def test_lazy_previews_fail_where_the_eager_parser_fails(doc: tuple[Any, str], data: st.DataObject) -> None:
    """Damaged documents: after every piece a lazy preview equals the eager one, or raises the error
    the eager parser raised by then (same position and reason), and so does finish()."""
    _, text = doc
    at = data.draw(st.integers(0, len(text)))
    text = text[:at] + data.draw(st.sampled_from(list(',:[]{}"\\ 1-.etx\x01'))) + text[at:]
    pieces = splits(data, text)
    unique = data.draw(st.booleans())
    eager = PartialJSON(events=False, unique_keys=unique)
    lazy = PartialJSON(events=False, lazy=True, unique_keys=unique)
    expected: tuple[str, Any] = ("ok", None)
    for piece in pieces:
        if expected[0] == "ok":
            expected = outcome(functools.partial(feed_and_preview, eager, piece))
        lazy.feed(piece)
        got = outcome(lazy.snapshot)
        assert got == expected
        if got[0] != "ok":
            return
    assert outcome(lazy.finish) == outcome(eager.finish)
