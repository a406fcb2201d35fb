"""Healing half-streamed markdown: exact cases, every prefix of real answers rendered, and properties."""

from __future__ import annotations

import io
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.markdown import Markdown

from midstream.core.markdown import heal

CASES = [
    # emphasis and code spans
    ("**bo", "**bo**"),
    ("hello *wor", "hello *wor*"),
    ("a `code", "a `code`"),
    ("``a ` b", "``a ` b``"),
    ("``a`", "``a` ``"),
    ("~~gone", "~~gone~~"),
    ("***a** b", "***a** b*"),
    ("**foo*", "**foo**"),
    ("**bold** and *it", "**bold** and *it*"),
    ("**a `code", "**a `code`**"),
    ("__strong", "__strong__"),
    ("snake_case and _it", "snake_case and _it_"),
    ("keep snake_case", "keep snake_case"),
    ("see [docs](http://x", "see [docs](http://x)"),
    ("**open  ", "**open**"),
    # a trailing marker still arriving is dropped
    ("x **", "x "),
    ("x `", "x "),
    ("**b `", "**b**"),
    ("word*", "word"),
    # nothing to do
    ("2 * 3 = 6", "2 * 3 = 6"),
    ("done.", "done."),
    ("", ""),
    ("para\n\n", "para\n\n"),
    ("**a** and `b`", "**a** and `b`"),
    # emphasis never crosses a paragraph, a list item or a heading
    ("*a\n\nb", "*a\n\nb"),
    ("a\n\n**b\nc", "a\n\n**b\nc**"),
    ("# Title\nsome *it", "# Title\nsome *it*"),
    ("- one *x\n- item **b", "- one *x\n- item **b**"),
    # a stub of a list item, heading or rule cannot turn the line above into a heading
    ("foo\n-", "foo\n"),
    ("foo\n=", "foo\n"),
    ("foo\n\n#", "foo\n\n"),
    ("- one\n- ", "- one\n"),
    ("1. one\n2", "1. one\n"),
    # code fences
    ("```py\nprint(1)", "```py\nprint(1)\n```"),
    ("```py\nprint(1)\n", "```py\nprint(1)\n```"),
    ("```py\nx\n``", "```py\nx\n```"),
    ("```", "```\n```"),
    ("~~~~\n**not bold", "~~~~\n**not bold\n~~~~"),
    ("```\na\n```\nafter **b", "```\na\n```\nafter **b**"),
    ("````md\n```\ninner", "````md\n```\ninner\n````"),
    # tables
    ("| a | b", "| a | b |\n| --- | --- |"),
    ("| a | b |\n", "| a | b |\n| --- | --- |"),
    ("| a | b |\n| --", "| a | b |\n| -- | --- |"),
    ("| a | b |\n| :-- | -", "| a | b |\n| :-- | - |"),
    ("| a | b |\n|", "| a | b |\n| --- | --- |"),
    ("| a | b |\n|---|---|", "| a | b |\n|---|---|"),
    ("| a | b |\n|---|---|\n| 1 | **2", "| a | b |\n|---|---|\n| 1 | **2** |"),
    ("| a | b |\n|---|---|\n| 1 |", "| a | b |\n|---|---|\n| 1 |"),
    ("| a |\n| --- |\n|", "| a |\n| --- |\n"),
    ("| a |\n| --- |\n| x |\n", "| a |\n| --- |\n| x |\n"),
    ("|", ""),
]


@pytest.mark.parametrize(("text", "healed"), CASES)
def test_cases(text: str, healed: str) -> None:
    assert heal(text) == healed


ANSWER = """## Partial safety

Streaming makes a model *feel* fast, but every frame is **incomplete**. A tool call whose
arguments are still arriving must ~~never~~ not run, and a `ResponseEnd` can cut a value in half.

- A *prefix* that parses is not complete.
- Strings stay **open** until their quote arrives.

| Provider | Streams arguments |
| --- | :---: |
| Anthropic | **buffered** or eager |
| OpenAI | as `fragments` |

```python
for event in stream:
    view.feed(event)
```

Read [the design](https://example.com/design) before you build on it.
"""

ESSAY = """Rivers **begin as springs**, gather *tributaries* and carve valleys.

1. Source: `snowmelt` and rain.
2. Course: the **long middle**.

~~~
plain code with **stars**
~~~

A last line with *emphasis at the very end*"""


def _render(text: str) -> str:
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None, legacy_windows=False)
    console.print(Markdown(text))
    return out.getvalue()


@pytest.mark.parametrize("doc", [ANSWER, ESSAY], ids=["answer", "essay"])
def test_every_prefix_renders_without_stray_markup(doc: str) -> None:
    """Rendered, no healed prefix shows a marker that the whole answer does not show."""
    allowed = set(_render(doc))
    for marker in "*`~|_":
        assert marker not in allowed or (marker == "*" and doc is ESSAY)  # the essay's code shows stars
    for end in range(len(doc) + 1):
        rendered = _render(heal(doc[:end]))
        outside_code = "\n".join(line for line in rendered.splitlines() if "plain code" not in line)
        stray = set(outside_code) & set("*`~|_")
        assert not stray, (doc[:end], rendered)


def test_every_prefix_stays_on_course() -> None:
    """A healed prefix renders only words of the final answer (the last one may still be growing).

    A link's text shows in brackets until its URL starts arriving; that is the one visible change.
    """
    final_words = _render(ANSWER).split()
    for end in range(len(ANSWER) + 1):
        words = _render(heal(ANSWER[:end])).split()
        for word in words[:-1]:
            word = word.lstrip("[").rstrip("]")
            assert any(w.startswith(word) for w in final_words), (ANSWER[:end], word)


def test_completed_answer_is_untouched() -> None:
    assert heal(ANSWER) == ANSWER
    assert heal(ANSWER.rstrip("\n")) == ANSWER.rstrip("\n")


_MARKDOWNISH = st.text(alphabet=st.sampled_from(list("ab _*`~|-:#>[]()\\\n") + list("12.")), max_size=60)


def _core(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=300, deadline=None)
@given(_MARKDOWNISH)
def test_only_appends_or_drops_trailing_markup(text: str) -> None:
    """Received words are never dropped or moved: only trailing markup may go, only closers come."""
    healed = heal(text)
    kept = _core(text).rstrip(string.punctuation + string.digits)
    assert _core(healed).startswith(kept)


@settings(max_examples=300, deadline=None)
@given(_MARKDOWNISH)
def test_healing_twice_changes_nothing(text: str) -> None:
    once = heal(text)
    assert heal(once) == once
