"""The agent loop: stream a response, run the tool calls it completed, send the results back, repeat.

``Agent(client, tools=[...], hooks=..., settings=...)`` holds what does not change between runs;
``agent.run(prompt)`` returns a :class:`Run`, an async iterator of every event of the run (each stream
event, the tool field events and the lifecycle events of :mod:`midstream.agent.events`), that can also
be awaited for its :class:`RunResult`, cancelled, and checkpointed. ``agent.run_sync(prompt)`` is the
same for scripts. What a run guarantees:

* **Nothing partial acts.** A tool runs only for a call whose input arrived whole and valid
  (``ToolCallReady``, then the tool's own schema), and only once its response *completed*: a response
  that ends truncated, failed or cancelled drives no tool at all, not even its complete calls. Invalid
  or truncated input is never executed; it goes back to the model as ``{"INVALID_JSON": raw}`` with an
  ``is_error`` result.
* **Explicit recovery** (:mod:`midstream.agent._recovery`): a tool input cut by ``max_tokens`` is asked
  for again with a larger budget (``errors.max_tokens_growth``, up to ``errors.max_retries`` with
  ``errors.backoff``); a retryable failure after content is re-requested, continuing the partial text
  by prefilling it where the provider supports that; a tool whose eager input keeps failing to parse
  falls back to buffered streaming. Each retry and fallback is an event.
* **At most once.** Calls go through an :class:`~midstream.agent.effects.EffectLedger`: a call id runs
  at most once, side effects are journaled with idempotency keys, and a re-run with the same journal
  skips what an earlier run did (``skip_compensated``: also what it did and then undid on cancel).
* **Cancel means stop.** :meth:`Run.cancel` closes the stream (the server sees the disconnect), starts
  no pending tool, cancels running tools cooperatively (a sync tool's thread is waited for), and
  compensates the side effects this run completed, newest first, before the ``Cancel`` hook.
* **Exactly one ending:** a single :class:`~midstream.agent.events.RunEnd`, the last event, with the
  run's terminal state (``completed``, ``truncated``, ``failed`` or ``cancelled``).

Hooks fire at ``SessionStart`` and ``UserPromptSubmit`` (their additional context is given to the model),
``StreamStart`` and ``FirstToken`` (each request), ``PreToolUse`` / ``PermissionRequest`` (before each
call), ``PostToolUse`` / ``PostToolUseFailure``, ``StreamError``, ``Cancel`` and ``Stop`` (every ending).
A failing hook never breaks the run (see :mod:`midstream.agent.hooks`).

The agent always streams; ``streaming.enabled = false`` in the settings turns off fine-grained (eager)
argument streaming only. An ``AsyncClient``'s connections belong to one event loop: for an agent run
with ``run_sync`` more than once, pass a sync ``Client`` (each ``run_sync`` then gets its own async one).

Example::

    agent = Agent(AsyncClient("anthropic", model="claude-sonnet-4-5"), [get_weather, save_article],
                  settings="midstream.toml", journal="effects.jsonl")
    run = agent.run("What is the weather in Paris?")
    async for event in run:                 # stream events, tool events, lifecycle events
        ...
    result = await run                      # RunResult: terminal, reason, message, text, turns, ...
"""

from __future__ import annotations

import asyncio
import inspect
import os
import reprlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from midstream.agent._run import EventCallback, Run, RunProgress, RunResult
from midstream.agent.checkpoint import Checkpoint
from midstream.agent.effects import Journal, MemoryJournal, open_journal
from midstream.agent.hooks import Hooks
from midstream.agent.monitor import StreamingMonitor
from midstream.agent.tools import Tool
from midstream.client.request import ToolSpec
from midstream.client.stream import AsyncClient, Client
from midstream.client.timeouts import Timeouts
from midstream.config import Settings, load_settings
from midstream.errors import LocalError

__all__ = ["Agent", "Run", "RunProgress", "RunResult"]


def _as_async(client: Client | AsyncClient) -> AsyncClient:
    if isinstance(client, AsyncClient):
        return client
    if isinstance(client, Client):
        # Same provider, key, URL and policies; the sync client's own connection pool is not shared.
        return client.to_async()
    raise LocalError(f"an Agent needs a midstream Client or AsyncClient, not {type(client).__name__}")


def _tool_items(tools: Any) -> list[Any]:
    if isinstance(tools, Tool | dict | str | bytes | type) or inspect.isroutine(tools):
        raise TypeError(f"tools= takes a list of tools, not a {type(tools).__name__}: write tools=[...]")
    try:
        return list(tools)
    except TypeError:
        raise TypeError(f"tools= takes a list of tools, not a {type(tools).__name__}") from None


def _as_tool(item: Any) -> Tool:
    """A Tool, or a typed function made one; a schema alone (model, dict) has nothing to run."""
    if isinstance(item, Tool):
        return item
    if inspect.isroutine(item):
        return Tool(item)
    if isinstance(item, dict) or (isinstance(item, type) and issubclass(item, BaseModel)):
        raise TypeError(
            f"an Agent runs its tools, and a {type(item).__name__} schema has no function to run: "
            "give it one with @midstream.tool(schema=...) on a function taking the validated input "
            "(the schema alone is enough for Client.stream(tools=...))"
        )
    raise TypeError(
        f"an Agent's tools are midstream.Tool objects or typed functions, not a {type(item).__name__} "
        f"({reprlib.repr(item)})"
    )


class Agent:
    """Tools, hooks, settings, journal and model options shared by the runs of one agent.

    ``client`` is an :class:`~midstream.client.stream.AsyncClient` (a sync ``Client`` is converted).
    ``tools`` are :class:`~midstream.agent.tools.Tool` objects or typed functions. ``hooks`` defaults to
    the shell hooks of ``settings`` (a :class:`~midstream.config.Settings` or a settings file path);
    ``journal`` (a :class:`~midstream.agent.effects.Journal` or a ``.jsonl`` / ``.db`` path) keeps side
    effects across runs. ``name`` (default ``settings.agent.name``) selects eager streaming through
    ``streaming.enable_for_agents``. A tool that fell back to buffered streaming stays buffered for the
    agent's later runs (:attr:`buffered`).

    Example:

        >>> @midstream.tool
        ... def get_weather(city: str, unit: str = "celsius") -> str:
        ...     \"\"\"Weather in a city.
        ...
        ...     Args:
        ...         city: the city's name
        ...     \"\"\"
        ...     return f"18 degrees {unit} in {city}"
        >>> from midstream.sim import running
        >>> with running(speed=0) as url:
        ...     client = midstream.Client("anthropic", base_url=url, model="claude-sonnet-4-5")
        ...     agent = midstream.Agent(client, tools=[get_weather])
        ...     result = agent.run_sync("What is the weather in Paris?")
        >>> result.terminal, len(result.executed)
        ('completed', 1)
    """

    def __init__(
        self,
        client: Client | AsyncClient,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        *,
        hooks: Hooks | None = None,
        settings: Settings | str | os.PathLike[str] | None = None,
        journal: Journal | str | os.PathLike[str] | None = None,
        name: str | None = None,
        model: str | None = None,
        system: str | None = None,
        max_tokens: int = 1024,
        thinking_budget: int | None = None,
        timeouts: Timeouts | None = None,
        monitor: StreamingMonitor | None = None,
        skip_compensated: bool = True,
    ) -> None:
        if not isinstance(settings, Settings):
            settings = Settings() if settings is None else load_settings(Path(settings))
        self.settings: Settings = settings
        self._sync_source = client if isinstance(client, Client) else None
        self.client = _as_async(client)
        self.tools: dict[str, Tool] = {}
        for item in _tool_items(tools):
            made = _as_tool(item)
            if made.name in self.tools:
                raise LocalError(f"two tools are called {made.name!r}")
            self.tools[made.name] = made
        self.hooks = hooks if hooks is not None else Hooks.from_settings(self.settings)
        if isinstance(journal, str | os.PathLike):
            journal = open_journal(Path(journal))
        self.journal: Journal = journal if journal is not None else MemoryJournal()
        self.name = name or self.settings.agent.name or "agent"
        chosen = model or self.client.model
        if not chosen:
            raise LocalError("no model: pass model= to the Agent or to its client")
        self.model: str = chosen
        if max_tokens <= 0:
            raise LocalError("max_tokens must be positive")
        self.system, self.max_tokens, self.thinking_budget = system, max_tokens, thinking_budget
        self.timeouts = timeouts
        self.monitor = monitor if monitor is not None else StreamingMonitor(self.settings.metrics)
        self.skip_compensated = skip_compensated
        self.buffered: set[str] = set()
        self.invalid_eager: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, {self.client.provider}, tools={sorted(self.tools)})"

    def eager_for(self, tool: Tool) -> bool:
        """Whether ``tool`` streams its arguments eagerly now (settings, its own option, fallbacks)."""
        if tool.name in self.buffered:
            return False
        return self.settings.streaming.eager_for(tool.name, agent=self.name, tool_default=tool.eager)

    def blame_eager(self, tool: str) -> int:
        """``tool``'s eager input did not parse once more; at ``errors.eager_fallback_after`` such
        inputs it falls back to buffered streaming. Returns the count when it falls back, else 0."""
        if tool in self.buffered:
            return 0
        self.invalid_eager[tool] += 1
        count = self.invalid_eager[tool]
        if count < self.settings.errors.eager_fallback_after:
            return 0
        self.buffered.add(tool)
        self.monitor.record_fallback(tool)
        return count

    def tool_specs(self) -> tuple[ToolSpec, ...]:
        """What the model is told about the tools in the next request."""
        return tuple(t.to_spec(eager=self.eager_for(t)) for t in self.tools.values())

    def run(
        self,
        prompt: str,
        *,
        history: Sequence[Any] = (),
        max_iterations: int | None = None,
        on_event: EventCallback | Sequence[EventCallback] | None = None,
        session_id: str | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        on_checkpoint: Callable[[Checkpoint], object] | None = None,
    ) -> Run:
        """Start a run (lazily: at the first iteration, ``await`` or :meth:`Run.start`).

        ``history`` is the conversation before ``prompt``, in the forms
        :meth:`~midstream.client.request.ChatRequest.create` takes (user strings or ``{"role": "user",
        "content"}`` dicts, assistant :class:`~midstream.message.Message` objects, tool results,
        :class:`~midstream.client.request.Turn` objects): the model sees it, in order, before the prompt.
        ``on_event`` callbacks get every event synchronously, in order (a callback that raises is
        logged and skipped). ``checkpoint_path`` saves a checkpoint at every clean boundary;
        ``on_checkpoint`` is called with it there (synchronously: after the events that led to it).

        Example::

            earlier = ["Plan a trip to Kyoto", previous_result.message]
            run = agent.run("And where should we eat?", history=earlier)
        """
        return Run(
            self,
            prompt,
            history=history,
            max_iterations=max_iterations,
            on_event=on_event,
            session_id=session_id,
            checkpoint_path=checkpoint_path,
            on_checkpoint=on_checkpoint,
        )

    def resume(
        self,
        checkpoint: Checkpoint | str | os.PathLike[str],
        *,
        max_iterations: int | None = None,
        on_event: EventCallback | Sequence[EventCallback] | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        on_checkpoint: Callable[[Checkpoint], object] | None = None,
    ) -> Run:
        """Continue a run from a checkpoint: its pending tool calls first (those already executed are
        not executed again), then the loop."""
        saved = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint.load(checkpoint)
        return Run(
            self,
            None,
            max_iterations=max_iterations,
            on_event=on_event,
            session_id=saved.session_id,
            checkpoint_path=checkpoint_path,
            checkpoint=saved,
            on_checkpoint=on_checkpoint,
        )

    def run_sync(self, prompt: str, **options: Any) -> RunResult:
        """:meth:`run` on a fresh event loop, to the end. Ctrl-C cancels the run (with compensation) and
        returns its ``cancelled`` result. With a sync ``Client``, each call gets its own async client;
        an ``AsyncClient`` given directly must not be bound to another event loop."""

        async def main() -> RunResult:
            client = _as_async(self._sync_source) if self._sync_source is not None else None
            run = Run(self, prompt, client=client, **options)
            try:
                return await run.result()
            except asyncio.CancelledError:
                if run.outcome is None:
                    raise
                return run.outcome
            finally:
                if client is not None:
                    await client.aclose()

        return asyncio.run(main())
