"""NDJSONSplitter and JSONArraySplitter: whole, byte by byte and random splits agree; bounds; garbage."""

from __future__ import annotations

import json
import random
from typing import TypeVar

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from midstream.errors import LimitExceeded, LocalError, RemoteProtocolError
from midstream.wire.ndjson import JSONArraySplitter, NDJSONSplitter
from wiresupport import random_splits, recorded

Splitter = TypeVar("Splitter", NDJSONSplitter, JSONArraySplitter)


def run(make: type[Splitter], chunks: list[bytes]) -> tuple[list[str], Splitter]:
    splitter = make()
    out: list[str] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    out.extend(splitter.close())
    return out, splitter


def all_splits_agree(make: type[Splitter], data: bytes, runs: int = 100) -> list[str]:
    whole, _ = run(make, [data])
    assert run(make, [data[i : i + 1] for i in range(len(data))])[0] == whole
    rng = random.Random(7)
    for _ in range(runs):
        assert run(make, random_splits(data, rng))[0] == whole
    return whole


# -- NDJSON ----------------------------------------------------------------------------------------


def test_ndjson_recorded_ollama_stream() -> None:
    lines = all_splits_agree(NDJSONSplitter, recorded("ollama_generate_stream_docs_example.ndjson"))
    docs = [json.loads(line) for line in lines]
    assert len(docs) == 7
    assert "".join(doc["response"] for doc in docs) == "That's a fantastic question!"
    assert docs[-1]["done"] is True and docs[-1]["done_reason"] == "stop"


def test_ndjson_crlf_blank_lines_and_missing_final_newline() -> None:
    data = b'{"a":1}\r\n\r\n  \n{"b":"\xc3\xa9"}\r\n{"c":3}'
    assert all_splits_agree(NDJSONSplitter, data) == ['{"a":1}', '{"b":"é"}', '{"c":3}']


_NDJSON_LINES = st.sampled_from(
    [
        b'{"a":1}\n',
        b'{"a":"\xc3\xa9"}\r\n',
        b'{"a":"\xff"}\n',
        b"\n",
        b"  \n",
        b'{"b":2}\n{"c":3}\n',
        b'{"d":',  # a line left open: the next one finishes it
        b'{"' + b"x" * 20 + b'":0}\n',
        b"\xef\xbb\xbf{}\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_NDJSON_LINES, min_size=1, max_size=10), group=st.integers(1, 3))
# A line within the bound but for its trailing spaces: the bound counts them whether the line is
# complete in one chunk or still arriving.
@example(lines=[b'{"d":', b'{"d":', b'{"d":', b"  \n"], group=1)
def test_ndjson_chunks_of_whole_lines_split_as_a_byte_at_a_time_read(lines: list[bytes], group: int) -> None:
    # A chunk ending with a line end, arriving with nothing buffered, is split without the line buffer.
    def split(chunks: list[bytes]) -> tuple[list[str], str]:
        splitter, out = NDJSONSplitter(max_line=16), []
        try:
            for piece in chunks:
                splitter.feed(piece, out)
            out.extend(splitter.close())
        except LimitExceeded as exc:
            return out, str(exc)
        return out, ""

    body = b"".join(lines)
    chunks = [b"".join(lines[i : i + group]) for i in range(0, len(lines), group)]
    assert split(chunks) == split([body[i : i + 1] for i in range(len(body))])


def test_ndjson_line_limit() -> None:
    splitter = NDJSONSplitter(max_line=8)
    assert splitter.feed(b'{"a":1}\n') == ['{"a":1}']
    with pytest.raises(LimitExceeded):
        splitter.feed(b'{"abc":12')


def test_ndjson_feed_after_close() -> None:
    splitter = NDJSONSplitter()
    splitter.close()
    assert splitter.close() == []
    with pytest.raises(LocalError):
        splitter.feed(b"{}")


# -- JSON array ------------------------------------------------------------------------------------


def test_array_recorded_gemini_capture() -> None:
    elements = all_splits_agree(JSONArraySplitter, recorded("gemini_jsonarray_text_capture.txt"))
    assert len(elements) == 2
    assert elements[0].startswith('{\n  "candidates"') and elements[0].endswith(
        '"md2UaLXRCaKTmNAPrsSpgAo"\n}'
    )
    second = json.loads(elements[1])
    assert second["candidates"][0]["finishReason"] == "STOP"
    assert second["usageMetadata"]["candidatesTokenCount"] == 12


def test_array_tricky_strings_and_nesting() -> None:
    # Brackets and braces inside strings, escaped quotes and backslashes, nested arrays, CRLF separators.
    first = '{"t":"a}]\\"{[","u":"\\\\","v":[1,[2,{"w":"}"}]]}'
    second = '[{"x":"\\\\\\""}]'
    data = f"\ufeff \r\n[{first}\n,\r\n{second}\n]\n".encode()
    assert all_splits_agree(JSONArraySplitter, data) == [first, second]
    assert json.loads(first)["t"] == 'a}]"{['


def test_array_multibyte_text_split_anywhere() -> None:
    data = '[{"t":"日本語 ✓ 🙂"},{"u":"é"}]'.encode()
    assert all_splits_agree(JSONArraySplitter, data) == ['{"t":"日本語 ✓ 🙂"}', '{"u":"é"}']


def test_array_lone_error_object() -> None:
    body = b'{\n  "error": {\n    "code": 400,\n    "message": "bad {",\n    "status": "X"\n  }\n}\n'
    elements = all_splits_agree(JSONArraySplitter, body)
    assert len(elements) == 1
    assert json.loads(elements[0])["error"]["code"] == 400


def test_array_empty_and_finished_flag() -> None:
    elements, splitter = run(JSONArraySplitter, [b" [ ] "])
    assert elements == [] and splitter.finished
    elements, splitter = run(JSONArraySplitter, [b'[{"a":1},{"b":'])
    assert elements == ['{"a":1}'] and not splitter.finished
    elements, splitter = run(JSONArraySplitter, [b'[{"a":1}\n'])
    assert elements == ['{"a":1}'] and not splitter.finished
    elements, splitter = run(JSONArraySplitter, [b""])
    assert elements == [] and not splitter.finished


@pytest.mark.parametrize(
    "body",
    [
        b"data: {}",  # not JSON at all (an SSE body)
        b'[{"a":1} {"b":2}]',  # missing comma
        b'[{"a":1},,{"b":2}]',  # double comma
        b'[{"a":1},]',  # trailing comma
        b"[1, 2]",  # scalars are not documents
        b'[{"a":1}] {"b":2}',  # data after the end
        b'{"a":1}{"b":2}',  # two lone objects
        b'[{"a":1}]]',
    ],
)
def test_array_garbage_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        run(JSONArraySplitter, [body])
    with pytest.raises(RemoteProtocolError):
        run(JSONArraySplitter, [body[i : i + 1] for i in range(len(body))])


def test_array_document_limit_same_for_any_split() -> None:
    body = b'[{"a":"0123456789"},{"b":"0123456789012345"}]'
    limit = len('{"a":"0123456789"}')
    splitter = JSONArraySplitter(max_document=limit)
    assert splitter.feed(body[:20]) == ['{"a":"0123456789"}']
    with pytest.raises(LimitExceeded) as info:
        splitter.feed(body[20:])
    assert info.value.limit == "max_document"
    bytewise = JSONArraySplitter(max_document=limit)
    with pytest.raises(LimitExceeded):
        for i in range(len(body)):
            bytewise.feed(body[i : i + 1])


def test_array_whitespace_between_elements_is_not_buffered() -> None:
    splitter = JSONArraySplitter(max_document=16)
    assert splitter.feed(b"[" + b" \r\n" * 10_000 + b'{"a":1}') == ['{"a":1}']


def test_array_feed_after_close() -> None:
    splitter = JSONArraySplitter()
    splitter.close()
    with pytest.raises(LocalError):
        splitter.feed(b"[]")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)
documents = st.one_of(
    st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    st.lists(json_values, max_size=4),
)


@settings(max_examples=80, deadline=None)
@given(
    docs=st.lists(documents, max_size=5),
    indent=st.sampled_from([None, 2]),
    separator=st.sampled_from([",", "\n,\r\n", " , "]),
    seed=st.integers(0, 1000),
)
def test_array_any_split_any_documents(
    docs: list[object], indent: int | None, separator: str, seed: int
) -> None:
    texts = [json.dumps(doc, indent=indent, ensure_ascii=False) for doc in docs]
    data = ("[" + separator.join(texts) + "]").encode()
    whole, splitter = run(JSONArraySplitter, [data])
    assert whole == texts and splitter.finished
    assert run(JSONArraySplitter, random_splits(data, random.Random(seed)))[0] == texts


class _Hang(Exception):
    pass


def _feed_guarded(splitter: NDJSONSplitter | JSONArraySplitter, body: bytes, seconds: int) -> list[str]:
    """Feed ``body`` in 1 KiB chunks; a hang guard (not a speed assertion) fails the test after
    ``seconds``, which linear work never comes near and quadratic work on these sizes far exceeds."""
    import signal

    def on_alarm(signum: int, frame: object) -> None:
        raise _Hang(f"splitting took more than {seconds} s: quadratic in the line length")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        out: list[str] = []
        for i in range(0, len(body), 1024):
            out.extend(splitter.feed(body[i : i + 1024]))
        return out + splitter.close()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_ndjson_long_line_in_many_chunks_is_linear() -> None:
    line = b'{"response":"' + b"x" * (16 << 20) + b'"}'
    out = _feed_guarded(NDJSONSplitter(), line + b"\n{}\n", 30)
    assert [len(o) for o in out] == [len(line), 2]


def test_ndjson_long_line_bound_counts_pieces() -> None:
    splitter = NDJSONSplitter(max_line=10)
    assert splitter.feed(b"12345") == []
    assert splitter.feed(b"67890") == []
    with pytest.raises(LimitExceeded):
        splitter.feed(b"1")


def test_json_array_long_element_in_many_chunks_is_linear() -> None:
    # Escaped backslashes every 1000 characters, so some of them straddle a chunk boundary.
    element = b'{"text":"' + (b"x" * 1000 + b"\\\\") * (30 << 10) + b'"}'
    out = _feed_guarded(JSONArraySplitter(), b"[" + element + b",{}]", 15)
    assert [len(o) for o in out] == [len(element), 2]
    assert json.loads(out[0])["text"] == ("x" * 1000 + "\\") * (30 << 10)


def test_json_array_long_element_bound_counts_pieces() -> None:
    splitter = JSONArraySplitter(max_document=10)
    assert splitter.feed(b'[{"a":"1') == []
    assert splitter.feed(b"23") == []
    with pytest.raises(LimitExceeded):
        splitter.feed(b"45")
