"""The page's markdown and run state: its healer (``static/heal.js``) agrees with the terminal's
(:func:`midstream.core.markdown.heal`) on the same inputs, and its renderer never makes HTML of text.

The page heals in the browser rather than receiving healed text from the server: healing runs at
every repaint on the text the page already holds, offline, and an event carrying the healed text
would re-send the whole answer at each frame and change the log every other reader shares. The
price is two implementations of one set of rules, and this test is what keeps them one: the same
inputs (the healer's own cases, every prefix of two answers, and thousands of random markdown-ish
strings, Unicode whitespace and digits included) go through both, in Chromium, and must agree exactly.

The run state (``static/run.js``) keeps a workflow's agents apart: their blocks share indices, their
entries interleave in one log, and each agent's text stays its own, in its own lane.
"""

# ruff: noqa: F811  (pytest fixtures imported from the support modules)
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from midstream.core.markdown import heal
from midstream.relay.serve import running
from test_markdown import ANSWER, CASES
from test_markdown import ESSAY as RIVERS
from websupport import SLOW_MARKDOWN, chromium, page  # noqa: F401

pytestmark = pytest.mark.browser

# Python's whitespace is not JS's (\x1c, \u00a0), nor its digits (\u0663): the port must mirror both.
ALPHABET = [*"ab _*`~|-:#>[]()\\\n12.", "\t", "\r", "\u00a0", "\u2003", "\x1c", "\u0663", "é", "😀"]


def inputs() -> list[str]:
    rng = random.Random(15)
    texts = [text for text, _ in CASES]
    for doc in (ANSWER, RIVERS, SLOW_MARKDOWN.replace("\\n", "\n")):
        texts += [doc[:n] for n in range(len(doc) + 1)]
    texts += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60))) for _ in range(4000)]
    return texts


@pytest.fixture(scope="module")
def relay() -> Iterator[str]:
    with running("memory") as url:  # serves the page's files; no runs needed
        yield url


def in_page(page: Any, relay: str, script: str, arg: Any) -> Any:
    page.goto(f"{relay}/")
    return page.evaluate(script, arg)


def test_the_page_heals_exactly_as_the_terminal_does(page: Any, relay: str) -> None:
    texts = inputs()
    script = "async (texts) => { const m = await import('/web/heal.js'); return texts.map(m.heal); }"
    got = in_page(page, relay, script, texts)
    mismatches = [(t, h, heal(t)) for t, h in zip(texts, got, strict=True) if h != heal(t)]
    assert mismatches == [], f"{len(mismatches)} of {len(texts)} differ, e.g. {mismatches[:3]!r}"


RENDER = """async (cases) => {
  const m = await import('/web/markdown.js');
  return cases.map(([text, streaming]) => {
    const box = document.createElement('div');
    box.append(m.renderMarkdown(text, streaming));
    return box.innerHTML;
  });
}"""


def test_rendering_makes_elements_of_markdown_and_text_of_everything_else(page: Any, relay: str) -> None:
    cases = [
        ("## Title\n\nSome **bold** and `code <b>`", False),
        ("<script>alert(1)</script>", False),
        ('<img src=x onerror="alert(1)">', False),
        ("[x](javascript:alert(1)) [y](https://example.org/a?b=1&c=2) ![z](http://example.org/i.png)", False),
        ("| a | b |\n|---|--:|\n| <i>1</i> | 2 |", False),
        ("```html\n<script>alert(1)</script>\n```", False),
        ("- one\n- two **bold", True),  # streaming: healed before rendering
        ("``` py\nprint(1)", True),
    ]
    html = in_page(page, relay, RENDER, cases)
    assert html[0] == "<h2>Title</h2><p>Some <strong>bold</strong> and <code>code &lt;b&gt;</code></p>"
    assert html[1] == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert html[2] == '<p>&lt;img src=x onerror="alert(1)"&gt;</p>'
    assert 'href="javascript' not in html[3] and "<img" not in html[3]
    safe = (
        '<a href="https://example.org/a?b=1&amp;c=2" rel="noopener noreferrer nofollow" target="_blank">y</a>'
    )
    assert safe in html[3]
    assert '<span class="unsafe-link" title="link not followed: javascript:alert(1)">x</span>' in html[3]
    assert '<th style="text-align: right;">b</th>' in html[4] and "<td>&lt;i&gt;1&lt;/i&gt;</td>" in html[4]
    assert html[5] == '<pre><code data-lang="html">&lt;script&gt;alert(1)&lt;/script&gt;</code></pre>'
    assert html[6] == "<ul><li>one</li><li>two <strong>bold</strong></li></ul>"
    assert html[7] == '<pre><code data-lang="py">print(1)</code></pre>'


FOLD = """async (entries) => {
  const { RunState } = await import('/web/run.js');
  const state = new RunState('r');
  for (const e of entries) state.apply(e);
  const again = entries.map((e) => state.apply(e));  // heard twice: ignored
  return { items: state.items, again, seq: state.seq, agents: state.agents, terminal: state.terminal };
}"""


def test_a_workflows_agents_keep_their_own_blocks_and_lanes(page: Any, relay: str) -> None:
    def e(seq: int, kind: str, agent: str, **data: Any) -> dict[str, Any]:
        return {"kind": kind, "seq": seq, "run": "r", "agent": agent, "agent_run": f"run-{agent}", **data}

    entries = [
        e(1, "response_start", "planner"),
        e(2, "response_start", "writer"),
        e(3, "block_start", "planner", index=0, type="text"),
        e(4, "block_start", "writer", index=0, type="text"),
        e(5, "text_delta", "planner", index=0, text="Plan: "),
        e(6, "text_delta", "writer", index=0, text="Draft: "),
        e(7, "text_delta", "planner", index=0, text="two steps."),
        e(8, "handoff_start", "planner", call_id="c1", sender="planner", receiver="writer", when="validated"),
        e(9, "text_delta", "writer", index=0, text="one page."),
        e(10, "run_end", "planner", terminal="completed"),
    ]
    got = in_page(page, relay, FOLD, entries)
    texts = [(i["agent"], i["text"]) for i in got["items"] if i["type"] == "text"]
    assert texts == [("planner", "Plan: two steps."), ("writer", "Draft: one page.")]
    assert got["agents"] == ["planner", "writer"] and got["terminal"] == "completed"
    assert got["again"] == [False] * len(entries) and got["seq"] == 10
    notices = [i["text"] for i in got["items"] if i["type"] == "notice"]
    assert notices == ["Handoff: planner → writer (started when the call was validated)"]
