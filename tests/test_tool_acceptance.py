"""Every entry point that takes tools takes the same things, and names what it got when it cannot.

``Client.stream``, ``AsyncClient.stream`` and ``ChatRequest.create`` accept a :class:`midstream.Tool`, a
typed function, a pydantic model class, a JSON-schema dict (Anthropic's, OpenAI's or Gemini's shape) and
a list mixing them. An :class:`midstream.Agent` runs its tools, so it takes what has a function behind
it. Anything else is a ``TypeError`` that names the value's type and what is accepted.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import midstream
from midstream.client.request import ToolSpec
from midstream.sim import running


@midstream.tool
def save_article(title: str, tags: list[str]) -> str:
    """Save an article."""
    return title


def search(query: str, limit: int = 5) -> list[str]:
    """Search the index."""
    return [query] * limit


class Lookup(BaseModel):
    """Look a word up."""

    word: str


DICT_SPEC = {"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}
OPENAI_SPEC = {
    "type": "function",
    "function": {"name": "forecast", "description": "A forecast", "parameters": {"type": "object"}},
}
MIXED: list[Any] = [save_article, search, Lookup, DICT_SPEC, OPENAI_SPEC]
NAMES = ["save_article", "search", "Lookup", "weather", "forecast"]


def test_chat_request_accepts_every_kind_of_tool_in_one_list() -> None:
    request = midstream.ChatRequest.create("m", "hi", tools=MIXED)
    assert [t.name for t in request.tools] == NAMES
    saved = request.tools[0]
    assert saved.input_schema == save_article.input_schema
    assert saved.description == "Save an article."
    assert request.tools[4].description == "A forecast"


def test_a_tool_object_keeps_its_own_eager_setting() -> None:
    eager = midstream.tool(eager=True)(search)
    assert ToolSpec.coerce(eager).eager is True


@pytest.mark.parametrize(
    "bad",
    [42, "save_article", object(), b"x", None],
    ids=["int", "str", "object", "bytes", "None"],
)
def test_anything_else_is_a_type_error_naming_it(bad: Any) -> None:
    with pytest.raises(TypeError) as caught:
        midstream.ChatRequest.create("m", "hi", tools=[bad])
    message = str(caught.value)
    assert type(bad).__name__ in message
    assert "pydantic model" in message and "midstream.Tool" in message


def test_a_callable_without_a_name_is_a_type_error() -> None:
    class Anonymous:
        def __call__(self, q: str) -> str:
            return q

    with pytest.raises(TypeError, match="Anonymous"):
        midstream.ChatRequest.create("m", "hi", tools=[Anonymous()])


@pytest.mark.parametrize("single", [save_article, DICT_SPEC, Lookup], ids=["tool", "dict", "model"])
def test_a_single_tool_not_in_a_list_says_so(single: Any) -> None:
    with pytest.raises(TypeError, match=r"a list"):
        midstream.ChatRequest.create("m", "hi", tools=single)


def test_client_stream_sends_a_tool_object_and_a_mixed_list() -> None:
    with running(speed=0) as url:
        client = midstream.Client("anthropic", api_key="k", base_url=url, model="m")
        with client.stream("hi", tools=MIXED) as stream:
            message = stream.final()
        assert message.terminal == "completed"
        assert [r.provider for r in url.simulator.records] == ["anthropic"]


@pytest.mark.anyio
async def test_async_client_stream_takes_a_tool_object() -> None:
    async def go(url: str) -> str:
        client = midstream.AsyncClient("anthropic", api_key="k", base_url=url, model="m")
        async with client.stream("hi", tools=[save_article]) as stream:
            message = await stream.final()
        return message.terminal

    with running(speed=0) as url:
        assert (await go(url)) == "completed"


def test_async_client_rejects_junk_before_sending() -> None:
    client = midstream.AsyncClient("anthropic", api_key="k", base_url="http://127.0.0.1:9", model="m")
    with pytest.raises(TypeError, match="int"):
        client.stream("hi", tools=[1])


def test_agent_takes_tools_and_typed_functions_mixed() -> None:
    client = midstream.Client("anthropic", api_key="k", base_url="http://127.0.0.1:9", model="m")
    agent = midstream.Agent(client, tools=[save_article, search])
    assert sorted(agent.tools) == ["save_article", "search"]


@pytest.mark.parametrize("spec", [Lookup, DICT_SPEC], ids=["model", "dict"])
def test_agent_explains_that_a_schema_alone_cannot_run(spec: Any) -> None:
    client = midstream.Client("anthropic", api_key="k", base_url="http://127.0.0.1:9", model="m")
    with pytest.raises(TypeError, match=r"schema="):
        midstream.Agent(client, tools=[spec])


@pytest.mark.parametrize("bad", [42, "search"], ids=["int", "str"])
def test_agent_rejects_junk_with_a_type_error(bad: Any) -> None:
    client = midstream.Client("anthropic", api_key="k", base_url="http://127.0.0.1:9", model="m")
    with pytest.raises(TypeError, match=type(bad).__name__):
        midstream.Agent(client, tools=[bad])


def test_agent_single_tool_not_in_a_list_says_so() -> None:
    client = midstream.Client("anthropic", api_key="k", base_url="http://127.0.0.1:9", model="m")
    with pytest.raises(TypeError, match=r"a list"):
        midstream.Agent(client, tools=save_article)  # type: ignore[arg-type]
