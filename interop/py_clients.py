"""Popular Python clients against the midstream simulator: one JSON line per (client, provider, case) cell.

Usage: ``python py_clients.py BASE_URL`` in the interop environment (``interop/requirements.txt``);
``interop/run.py`` starts the simulator, runs this and the Vercel AI SDK script, and compares the matrix.
A case passes when the client saw what the provider would have made it see; ``n/a`` marks what a
client cannot express on a provider.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

# LiteLLM fetches catalogs and configs from the network on its own unless told not to: the suite talks
# to the simulator on loopback and nothing else.
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

from pydantic import BaseModel

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
KEY = "sim-key"
LONG = 1100
TEXT = "Rivers carve valleys over thousands of years."
CASES = (
    "text",
    "long_argument",
    "two_turn_loop",
    "max_tokens",
    "mid_stream_error",
    "retry_after_429",
    "structured_output",
    "tool_choice",
)


class Trip(BaseModel):
    city: str
    nights: int
    tags: list[str]


class NotApplicable(Exception):
    """The client cannot express this case on this provider."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def clear_faults() -> None:
    urllib.request.urlopen(urllib.request.Request(f"{BASE}/_sim/requests", method="DELETE")).read()


def save_note(content: str) -> str:
    """Save a note."""
    SEEN["note"] = content
    return "saved"


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"18 C and sunny in {city}"


def lookup(q: str) -> str:
    """Look something up."""
    return "found"


def book(city: str) -> str:
    """Book a trip."""
    SEEN["booked"] = city
    return "booked"


SEEN: dict[str, Any] = {}


# -- pydantic-ai ----------------------------------------------------------------------------------------


def pydantic_ai_model(provider: str) -> Any:
    if provider == "anthropic":
        from anthropic import AsyncAnthropic
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        client = AsyncAnthropic(base_url=BASE, api_key=KEY, max_retries=2)
        return AnthropicModel("claude-sonnet-4-5", provider=AnthropicProvider(anthropic_client=client))
    if provider in ("openai-chat", "openai-responses"):
        from openai import AsyncOpenAI
        from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
        from pydantic_ai.providers.openai import OpenAIProvider

        client = AsyncOpenAI(base_url=f"{BASE}/v1", api_key=KEY, max_retries=2)
        kind = OpenAIChatModel if provider == "openai-chat" else OpenAIResponsesModel
        return kind("gpt-4.1-mini", provider=OpenAIProvider(openai_client=client))
    from google import genai
    from pydantic_ai.models.google import GoogleModel
    from pydantic_ai.providers.google import GoogleProvider

    client = genai.Client(api_key=KEY, http_options=genai.types.HttpOptions(base_url=BASE))
    return GoogleModel("gemini-2.5-flash", provider=GoogleProvider(client=client))


async def pydantic_ai_case(provider: str, case: str) -> None:
    from pydantic_ai import Agent, NativeOutput
    from pydantic_ai.exceptions import ModelHTTPError, UnexpectedModelBehavior

    model = pydantic_ai_model(provider)
    if case == "text":
        async with Agent(model).run_stream("interop text") as run:
            check(await run.get_output() == TEXT, "text")
    elif case == "long_argument":
        result = await Agent(model, tools=[save_note]).run("interop long")
        check(len(SEEN.pop("note", "")) == LONG and result.output == "Saved the note.", "argument")
    elif case == "two_turn_loop":
        result = await Agent(model, tools=[get_weather]).run("interop weather")
        check(result.output == "It is 18 C in Paris.", repr(result.output))
    elif case == "max_tokens":
        result = await Agent(model).run("interop essay", model_settings={"max_tokens": 20})
        check(result.response.finish_reason == "length", str(result.response.finish_reason))
    elif case == "mid_stream_error":
        try:
            async with Agent(model).run_stream("interop break") as run:
                await run.get_output()
        except (ModelHTTPError, UnexpectedModelBehavior, Exception) as exc:
            check("overload" in str(exc).lower() or "error" in type(exc).__name__.lower(), repr(exc))
            return
        raise AssertionError("no error seen: the cut answer passed for a whole one")
    elif case == "retry_after_429":
        clear_faults()
        check((await Agent(model).run("interop busy")).output == "Served after one retry.", "text")
    elif case == "structured_output":
        check(
            isinstance((await Agent(model, output_type=NativeOutput(Trip)).run("plan a trip")).output, Trip),
            "trip",
        )
    elif case == "tool_choice":
        # output_type= with a function tool: the output tool is required (tool_choice any / required).
        result = await Agent(model, output_type=Trip, tools=[lookup]).run("plan a trip")
        check(isinstance(result.output, Trip), repr(result.output))


# -- openai-agents --------------------------------------------------------------------------------------


async def openai_agents_case(provider: str, case: str) -> None:
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=f"{BASE}/v1", api_key=KEY, max_retries=2)
    kind = OpenAIResponsesModel if provider == "openai-responses" else OpenAIChatCompletionsModel
    model = kind(model="gpt-4.1-mini", openai_client=client)

    def agent(**options: Any) -> Any:
        return Agent(name="interop", instructions="Answer.", model=model, **options)

    if case == "text":
        run = Runner.run_streamed(agent(), "interop text")
        async for _ in run.stream_events():
            pass
        check(run.final_output == TEXT, repr(run.final_output))
    elif case == "long_argument":
        result = await Runner.run(agent(tools=[function_tool(save_note)]), "interop long")
        check(len(SEEN.pop("note", "")) == LONG and result.final_output == "Saved the note.", "argument")
    elif case == "two_turn_loop":
        result = await Runner.run(agent(tools=[function_tool(get_weather)]), "interop weather")
        check(result.final_output == "It is 18 C in Paris.", repr(result.final_output))
    elif case == "max_tokens":
        try:
            result = await Runner.run(agent(model_settings=ModelSettings(max_tokens=20)), "interop essay")
        except Exception as exc:  # the Responses model refuses an incomplete response
            check("incomplete" in str(exc), repr(exc))
            return
        raise AssertionError(
            f"the cut answer was returned as the final output ({len(result.final_output)} chars)"
        )
    elif case == "mid_stream_error":
        try:
            run = Runner.run_streamed(agent(), "interop break")
            async for _ in run.stream_events():
                pass
        except Exception as exc:
            check(True, repr(exc))
            return
        raise AssertionError("no error seen: the cut answer passed for a whole one")
    elif case == "retry_after_429":
        clear_faults()
        check((await Runner.run(agent(), "interop busy")).final_output == "Served after one retry.", "text")
    elif case == "structured_output":
        check(
            isinstance((await Runner.run(agent(output_type=Trip), "plan a trip")).final_output, Trip), "trip"
        )
    elif case == "tool_choice":
        tools = [function_tool(lookup), function_tool(book)]
        settings = ModelSettings(tool_choice="book")
        chosen = agent(tools=tools, model_settings=settings, tool_use_behavior="stop_on_first_tool")
        result = await Runner.run(chosen, "plan a trip")
        check(result.final_output == "booked" and "booked" in SEEN, repr(result.final_output))
        SEEN.pop("booked", None)


# -- LangChain ------------------------------------------------------------------------------------------


def langchain_model(provider: str, **options: Any) -> Any:
    if provider == "anthropic":
        from langchain_anthropic import ChatAnthropic

        return ChatAnthropic(model="claude-sonnet-4-5", base_url=BASE, api_key=KEY, max_retries=2, **options)
    from langchain_openai import ChatOpenAI

    responses = provider == "openai-responses"
    return ChatOpenAI(
        model="gpt-4.1-mini",
        base_url=f"{BASE}/v1",
        api_key=KEY,
        max_retries=2,
        use_responses_api=responses,
        **options,
    )


def _text(message: Any) -> str:
    text = message.text  # a property in langchain-core 1.x (a str), a method before
    return text if isinstance(text, str) else str(text())


async def langchain_case(provider: str, case: str) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    llm = langchain_model(provider)
    if case == "text":
        full = None
        async for chunk in llm.astream("interop text"):
            full = chunk if full is None else full + chunk
        check(_text(full) == TEXT, repr(full))
    elif case in ("long_argument", "two_turn_loop"):
        fn, prompt, answer = (
            (save_note, "interop long", "Saved the note.")
            if case == "long_argument"
            else (get_weather, "interop weather", "It is 18 C in Paris.")
        )
        bound = llm.bind_tools([tool(fn)])
        messages: list[Any] = [HumanMessage(prompt)]
        ai = await bound.ainvoke(messages)
        calls = ai.tool_calls
        check(len(calls) == 1 and calls[0]["name"] == fn.__name__, repr(calls))
        result = fn(**calls[0]["args"])
        messages += [ai, ToolMessage(result, tool_call_id=calls[0]["id"])]
        final = await bound.ainvoke(messages)
        check(_text(final) == answer, repr(_text(final)))
        if case == "long_argument":
            check(len(SEEN.pop("note", "")) == LONG, "argument")
    elif case == "max_tokens":
        ai = await langchain_model(provider, max_tokens=20).ainvoke("interop essay")
        meta = ai.response_metadata
        reason = (
            meta.get("stop_reason")
            or meta.get("finish_reason")
            or (meta.get("incomplete_details") or {}).get("reason")
        )
        check(reason in ("max_tokens", "length", "max_output_tokens"), repr(meta))
    elif case == "mid_stream_error":
        try:
            async for _ in llm.astream("interop break"):
                pass
        except Exception as exc:
            check(True, repr(exc))
            return
        raise AssertionError("no error seen: the cut answer passed for a whole one")
    elif case == "retry_after_429":
        clear_faults()
        check(_text(await llm.ainvoke("interop busy")) == "Served after one retry.", "text")
    elif case == "structured_output":
        check(isinstance(await llm.with_structured_output(Trip).ainvoke("plan a trip"), Trip), "trip")
    elif case == "tool_choice":
        ai = await llm.bind_tools([tool(lookup), tool(book)], tool_choice="book").ainvoke("plan a trip")
        check([c["name"] for c in ai.tool_calls] == ["book"], repr(ai.tool_calls))


# -- LiteLLM --------------------------------------------------------------------------------------------

LITELLM_MODELS = {
    "anthropic": ("anthropic/claude-sonnet-4-5", BASE),
    "openai-chat": ("openai/gpt-4.1-mini", f"{BASE}/v1"),
    "gemini": ("gemini/gemini-2.5-flash", f"{BASE}/v1beta"),
    "ollama": ("ollama_chat/llama3.2", BASE),
}


def _function(fn: Callable[..., str], schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": fn.__name__, "description": fn.__doc__, "parameters": schema},
    }


def _string_schema(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": "string"}}, "required": [name]}


async def litellm_case(provider: str, case: str) -> None:
    import litellm

    model, api_base = LITELLM_MODELS[provider]
    common: dict[str, Any] = {"model": model, "api_base": api_base, "api_key": KEY}

    def ask(text: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": text}]

    if case == "text":
        stream = await litellm.acompletion(**common, messages=ask("interop text"), stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
        check(text == TEXT, repr(text))
    elif case in ("long_argument", "two_turn_loop"):
        fn, arg, prompt, answer = (
            (save_note, "content", "interop long", "Saved the note.")
            if case == "long_argument"
            else (get_weather, "city", "interop weather", "It is 18 C in Paris.")
        )
        tools = [_function(fn, _string_schema(arg))]
        messages = ask(prompt)
        first = (await litellm.acompletion(**common, messages=messages, tools=tools)).choices[0].message
        calls = first.tool_calls or []
        check(len(calls) == 1, repr(calls))
        result = fn(**json.loads(calls[0].function.arguments))
        messages += [first.model_dump(), {"role": "tool", "tool_call_id": calls[0].id, "content": result}]
        final = (await litellm.acompletion(**common, messages=messages, tools=tools)).choices[0].message
        check(final.content == answer, repr(final.content))
        if case == "long_argument":
            check(len(SEEN.pop("note", "")) == LONG, "argument")
    elif case == "max_tokens":
        answer = await litellm.acompletion(**common, messages=ask("interop essay"), max_tokens=20)
        check(answer.choices[0].finish_reason == "length", answer.choices[0].finish_reason)
    elif case == "mid_stream_error":
        try:
            stream = await litellm.acompletion(**common, messages=ask("interop break"), stream=True)
            async for _ in stream:
                pass
        except Exception as exc:
            check(True, repr(exc))
            return
        raise AssertionError("no error seen: the cut answer passed for a whole one")
    elif case == "retry_after_429":
        clear_faults()
        answer = await litellm.acompletion(**common, messages=ask("interop busy"), num_retries=2)
        check(answer.choices[0].message.content == "Served after one retry.", "text")
    elif case == "structured_output":
        answer = await litellm.acompletion(**common, messages=ask("plan a trip"), response_format=Trip)
        Trip.model_validate_json(answer.choices[0].message.content)
    elif case == "tool_choice":
        if provider == "ollama":
            raise NotApplicable
        tools = [_function(lookup, _string_schema("q")), _function(book, _string_schema("city"))]
        choice = {"type": "function", "function": {"name": "book"}}
        answer = await litellm.acompletion(
            **common, messages=ask("plan a trip"), tools=tools, tool_choice=choice
        )
        names = [c.function.name for c in answer.choices[0].message.tool_calls or []]
        check(names == ["book"], repr(names))


# -- ollama ---------------------------------------------------------------------------------------------


async def ollama_case(provider: str, case: str) -> None:
    import ollama

    client = ollama.AsyncClient(host=BASE)
    model = "llama3.2"

    def ask(text: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": text}]

    if case == "text":
        text = "".join(
            [
                part.message.content or ""
                async for part in await client.chat(model, ask("interop text"), stream=True)
            ]
        )
        check(text == TEXT, repr(text))
    elif case in ("long_argument", "two_turn_loop"):
        fn, prompt, answer = (
            (save_note, "interop long", "Saved the note.")
            if case == "long_argument"
            else (get_weather, "interop weather", "It is 18 C in Paris.")
        )
        messages: list[Any] = ask(prompt)
        first = (await client.chat(model, messages, tools=[fn])).message
        calls = first.tool_calls or []
        check(len(calls) == 1, repr(calls))
        result = fn(**calls[0].function.arguments)
        messages += [first, {"role": "tool", "content": result, "tool_name": fn.__name__}]
        final = (await client.chat(model, messages, tools=[fn])).message
        check(final.content == answer, repr(final.content))
        if case == "long_argument":
            check(len(SEEN.pop("note", "")) == LONG, "argument")
    elif case == "max_tokens":
        answer = await client.chat(model, ask("interop essay"), options={"num_predict": 20})
        check(answer.done_reason == "length", str(answer.done_reason))
    elif case == "mid_stream_error":
        try:
            async for _ in await client.chat(model, ask("interop break"), stream=True):
                pass
        except ollama.ResponseError as exc:
            check("overload" in str(exc).lower(), repr(exc))
            return
        raise AssertionError("no error seen: the cut answer passed for a whole one")
    elif case == "retry_after_429":
        clear_faults()
        await client.chat(model, ask("interop busy"))  # the ollama client does not retry: this raises
    elif case == "structured_output":
        answer = await client.chat(model, ask("plan a trip"), format=Trip.model_json_schema())
        Trip.model_validate_json(answer.message.content or "")
    elif case == "tool_choice":
        raise NotApplicable  # Ollama has no tool_choice


CLIENTS: dict[str, tuple[Callable[[str, str], Awaitable[None]], tuple[str, ...]]] = {
    "pydantic-ai": (pydantic_ai_case, ("anthropic", "openai-chat", "openai-responses", "gemini")),
    "openai-agents": (openai_agents_case, ("openai-chat", "openai-responses")),
    "langchain": (langchain_case, ("anthropic", "openai-chat", "openai-responses")),
    "litellm": (litellm_case, ("anthropic", "openai-chat", "gemini", "ollama")),
    "ollama": (ollama_case, ("ollama",)),
}


async def main() -> None:
    only = set(sys.argv[2:])
    for client, (run, providers) in CLIENTS.items():
        if only and client not in only:
            continue
        for provider in providers:
            for case in CASES:
                try:
                    await asyncio.wait_for(run(provider, case), 60)
                    outcome = "ok"
                except NotApplicable:
                    outcome = "n/a"
                except Exception as exc:  # every failure is a cell of the matrix
                    detail = str(exc).splitlines()[0][:100] if str(exc) else ""
                    outcome = f"fail: {type(exc).__name__}{': ' + detail if detail else ''}"
                print(
                    json.dumps({"client": client, "provider": provider, "case": case, "outcome": outcome}),
                    flush=True,
                )


if __name__ == "__main__":
    asyncio.run(main())
