"""The workflow file: agents, handoffs and how a run starts, in TOML, YAML or JSON, validated.

Every error names the file and the key path (like the settings file)::

    name = "quick"
    pipeline = ["developer", "qa"]          # or: entry = "orchestrator"
    provider = "anthropic"                  # every agent's, unless it names its own
    model = "claude-sonnet-4-5"
    settings = "settings.json"              # relative to this file (optional)
    scenarios = "quick.yaml"                # what the simulator answers (optional)

    [agents.developer]
    system = "You write the code, then hand it to QA."
    handoffs = ["qa"]
    max_tokens = 8192
    tools = ["mypackage.tools:run_tests"]   # module:attribute, a midstream Tool or a typed function
    typical_bytes = { run_tests = 200 }     # usual argument sizes, for the eager-streaming policy

    [agents.qa]
    system = "You test what you are given."

:func:`load_workflow` returns a :class:`WorkflowFile`; :meth:`WorkflowFile.build` makes the
:class:`~midstream.workflow.flow.Workflow` with a client (one per provider) you give it.
"""

from __future__ import annotations

import importlib
import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from midstream.agent.tools import Tool
from midstream.client.stream import AsyncClient, Client
from midstream.config import Settings, SettingsError, load_settings, validation_problems
from midstream.errors import LocalError
from midstream.workflow.events import StartHandoffs
from midstream.workflow.flow import AgentSpec, Workflow

__all__ = ["AgentEntry", "WorkflowFile", "load_workflow"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentEntry(_Model):
    """One ``[agents.NAME]`` table."""

    system: str | None = None
    handoffs: list[str] = Field(default_factory=list)
    provider: str | None = None
    model: str | None = None
    max_tokens: int = Field(default=4096, gt=0)
    tools: list[str] = Field(default_factory=list)
    typical_bytes: dict[str, int] = Field(default_factory=dict)
    blackboard: bool = True
    settings: str | None = None


class WorkflowFile(_Model):
    """A validated workflow file; ``source`` is where it was read (relative paths start there)."""

    name: str = "workflow"
    description: str | None = None
    entry: str | None = None
    pipeline: list[str] | None = None
    provider: str = "anthropic"
    model: str | None = None
    settings: str | None = None
    scenarios: str | None = None
    start_handoffs: StartHandoffs = "validated"
    agents: dict[str, AgentEntry] = Field(min_length=1)
    source: str = "<workflow>"

    @model_validator(mode="after")
    def _known_names(self) -> WorkflowFile:
        names = set(self.agents)
        wanted = [("entry", self.entry)] if self.entry else []
        wanted += [(f"pipeline[{i}]", n) for i, n in enumerate(self.pipeline or ())]
        wanted += [(f"agents.{a}.handoffs", n) for a, e in self.agents.items() for n in e.handoffs]
        for where, name in wanted:
            if name not in names:
                raise ValueError(f"{where}: no agent is called {name!r} (agents: {', '.join(self.agents)})")
        return self

    def _path(self, relative: str) -> Path:
        base = Path(self.source).parent if self.source != "<workflow>" else Path.cwd()
        return (base / relative).resolve()

    @property
    def scenarios_path(self) -> Path | None:
        """The simulator's scenario file, resolved against the workflow file's directory."""
        return None if self.scenarios is None else self._path(self.scenarios)

    def load_settings(self, name: str | None = None) -> Settings:
        """The settings of agent ``name`` (its own file, else the workflow's), or the defaults."""
        chosen = self.agents[name].settings if name is not None and name in self.agents else None
        chosen = chosen or self.settings
        return Settings() if chosen is None else load_settings(self._path(chosen))

    def providers(self) -> set[str]:
        """Every provider an agent uses."""
        return {entry.provider or self.provider for entry in self.agents.values()}

    def build(
        self,
        clients: Mapping[str, Client | AsyncClient] | Client | AsyncClient,
        **options: Any,
    ) -> Workflow:
        """The :class:`Workflow`, each agent with the client of its provider (``options`` go to it)."""
        if isinstance(clients, Client | AsyncClient):
            clients = {provider: clients for provider in self.providers()}
        specs = []
        for name, entry in self.agents.items():
            provider = entry.provider or self.provider
            if provider not in clients:
                raise LocalError(f"{self.source}: agents.{name}: no client for provider {provider!r}")
            specs.append(
                AgentSpec(
                    name=name,
                    system=entry.system,
                    tools=[_import_tool(t, f"{self.source}: agents.{name}.tools") for t in entry.tools],
                    handoffs=entry.handoffs,
                    client=clients[provider],
                    model=entry.model or self.model,
                    max_tokens=entry.max_tokens,
                    settings=self.load_settings(name) if entry.settings else None,
                    blackboard=entry.blackboard,
                    typical_bytes=entry.typical_bytes,
                )
            )
        options.setdefault("settings", self.load_settings())
        options.setdefault("start_handoffs", self.start_handoffs)
        return Workflow(specs, entry=self.entry, pipeline=self.pipeline, name=self.name, **options)


def _import_tool(reference: str, where: str) -> Tool | Callable[..., Any]:
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise LocalError(f"{where}: {reference!r} is not module:attribute")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise LocalError(f"{where}: cannot import {reference!r}: {exc}") from None
    if not (isinstance(found, Tool) or callable(found)):
        raise LocalError(f"{where}: {reference!r} is not a tool or a function")
    return found  # type: ignore[no-any-return]


def load_workflow(path: str | Path) -> WorkflowFile:
    """Read and validate a workflow file (``.toml``, ``.yaml`` / ``.yml`` or ``.json``).

    Raises :class:`~midstream.config.SettingsError` naming the file and every bad key.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(source, [("", f"cannot read the file: {exc}")]) from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = tomllib.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SettingsError(source, [("", f"cannot parse the file: {exc}")]) from None
    if not isinstance(data, dict):
        raise SettingsError(source, [("", "a workflow file is a table / object")])
    try:
        return WorkflowFile.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise SettingsError(source, [(path, msg) for _, path, msg in validation_problems(exc)]) from None
