"""Example tools, and simulator scenarios that call them, for ``midstream run`` and the docs.

* :func:`get_weather` -- read-only and idempotent: a made-up but stable forecast for a city;
* :func:`search` -- read-only: made-up hits for a query (``limit`` matters: a prefix such as
  ``{"query": "x"}`` parses before ``"limit"`` arrives, and must not run);
* :func:`save_article` -- a side effect: writes ``<slug>.md`` into :func:`article_dir` and is
  compensated by deleting that file again (so a cancelled run leaves nothing behind).

``scenario_book()`` scripts the simulator for them: "weather" (two parallel calls, then an answer
using their results), "search", "article" (a long ``content`` argument, the one to cut with
``max_tokens``) and a plain-text fallback.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

import yaml

from midstream.agent.effects import EffectRecord
from midstream.agent.tools import Tool, tool
from midstream.sim.scenarios import ScenarioBook

__all__ = ["TOOLS", "article_dir", "get_weather", "save_article", "scenario_book", "search"]

ARTICLE_DIR_ENV = "MIDSTREAM_ARTICLE_DIR"


def article_dir() -> Path:
    """Where :func:`save_article` writes: ``$MIDSTREAM_ARTICLE_DIR``, else a ``midstream-articles``
    directory in the system's temporary directory."""
    configured = os.environ.get(ARTICLE_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "midstream-articles"


def _stable(text: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") % modulo


@tool(idempotent=True)
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, Any]:
    """The current weather in a city (made up, but the same for the same city).

    Args:
        city: the city's name, e.g. "Paris"
        unit: celsius or fahrenheit
    """
    celsius = 5 + _stable(city.lower(), 25)
    sky = ("sunny", "cloudy", "light rain", "windy")[_stable(city.lower() + "sky", 4)]
    temperature = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
    return {"city": city, "temperature": temperature, "unit": unit, "sky": sky}


@tool
def search(query: str, limit: int = 5) -> list[str]:
    """Search the knowledge base.

    Args:
        query: words to look for
        limit: how many hits at most
    """
    if limit < 1:
        return []
    return [f"{query} -- result {n}" for n in range(1, min(limit, 20) + 1)]


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "untitled"


def _remove_article(record: EffectRecord) -> None:
    result = record.result if isinstance(record.result, dict) else {}
    path = result.get("path")
    if isinstance(path, str):
        Path(path).unlink(missing_ok=True)


@tool(side_effect=True, compensate=_remove_article)
def save_article(title: str, content: str, tags: list[str] | None = None) -> dict[str, Any]:
    """Save an article to the knowledge base (a markdown file); undone by deleting it.

    Args:
        title: the article's title
        content: the article itself, in markdown
        tags: keywords
    """
    directory = article_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_slug(title)}.md"
    header = f"# {title}\n\n" + (f"tags: {', '.join(tags)}\n\n" if tags else "")
    path.write_text(header + content + "\n", encoding="utf-8")
    return {"path": str(path), "bytes": path.stat().st_size}


TOOLS: tuple[Tool, ...] = (get_weather, search, save_article)
"""The example tools, in the order they are offered."""

_SCENARIOS = """
scenarios:
  - name: weather
    match: {last_user: "(?i)weather", tools: [get_weather]}
    latency: {ttft_ms: 250, tokens_per_second: 60, jitter: 0.2}
    turns:
      - blocks:
          - text: "Let me check both cities."
          - tool_call: {name: get_weather, input: {city: Paris, unit: celsius}}
          - tool_call: {name: get_weather, input: {city: Tokyo, unit: celsius}}
      - blocks:
          - text: "I have the forecasts for Paris and Tokyo: see the tool results above."
  - name: search
    match: {last_user: "(?i)search|find", tools: [search]}
    turns:
      - blocks:
          - text: "Searching."
          - tool_call: {name: search, input: {query: partial safety, limit: 3}}
      - blocks:
          - text: "I found three results about partial safety."
  - name: article
    match: {last_user: "(?i)article|save|write", tools: [save_article]}
    turns:
      - blocks:
          - text: "I'll save the article now."
          - tool_call:
              name: save_article
              input:
                title: Partial safety
                tags: [streaming, agents]
                content: >-
                  Streaming makes an assistant feel fast, but every frame a client holds is
                  incomplete. A tool call whose arguments are still arriving must not run, and a
                  value cut by max_tokens must not pass for a complete one. An agent that streams
                  shows progress, and never acts on half an intent.
      - blocks:
          - text: "Saved: the article is in the knowledge base."
"""


def scenario_book() -> ScenarioBook:
    """Simulator scenarios for the example tools (see the module docstring)."""
    return ScenarioBook.model_validate(yaml.safe_load(_SCENARIOS))
