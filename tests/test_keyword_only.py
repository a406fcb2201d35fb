"""Events and results with more than three fields are built by keyword only, so that adding a field or
reading a construction never depends on the order of the fields."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest

import midstream

# Public dataclasses with more than three fields that stay positional, and why.
POSITIONAL = {
    # built once per frame on the decoding hot path, where a keyword call costs about half as much again
    "midstream.wire.sse.SSEEvent",
    # settings and requests rather than events or results: users build them, often positionally
    "midstream.request.ChatRequest",
    "midstream.request.ToolResult",
    "midstream.request.ToolSpec",
    "midstream.client.timeouts.Timeouts",
    "midstream.client.providers.HTTPRequest",
    "midstream.core.retry.RetryPolicy",
    "midstream.core.retry.Failure",
    "midstream.agent.hooks.HookResult",
    "midstream.agent.hooks.ToolPermission",
    "midstream.agent.effects.CallContext",
    "midstream.agent.monitor.StreamingMonitor",
    "midstream.cli.view.LiveView",
    "midstream.sim.script.Latency",
    "midstream.sim.script.ToolPart",
    "midstream.sim.stream.RequestRecord",
    "midstream.relay.adapters.aisdk.ChatRequestBody",
    "midstream.relay.adapters.agui.RunAgentInput",
    # stored records whose positional form is read back from journals and stores
    "midstream.agent._journal.EffectRecord",
    "midstream.agent._journal.JournalDamage",
    "midstream.agent.checkpoint.Checkpoint",
    "midstream.relay.log.Lease",
    "midstream.relay.log.RunStatus",
}


def public_dataclasses() -> dict[str, type]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(midstream.__path__, "midstream."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name, None)
            if isinstance(value, type) and dataclasses.is_dataclass(value):
                found.setdefault(f"{value.__module__}.{value.__qualname__}", value)
    return found


def init_fields(cls: type) -> list[dataclasses.Field[object]]:
    return [f for f in dataclasses.fields(cls) if f.init]


@pytest.mark.parametrize("module", ["midstream.events", "midstream.message", "midstream.agent.events"])
def test_every_event_and_block_of_the_vocabulary_with_more_than_three_fields_is_keyword_only(
    module: str,
) -> None:
    classes = [c for n, c in public_dataclasses().items() if n.startswith(module + ".")]
    assert classes, module
    wide = [c for c in classes if len(init_fields(c)) > 3]
    assert wide, f"{module} has no class with more than three fields: the check checks nothing"
    assert [c.__name__ for c in wide if not all(f.kw_only for f in init_fields(c))] == []


def test_every_other_public_dataclass_with_more_than_three_fields_is_keyword_only_or_listed() -> None:
    classes = public_dataclasses()
    positional = {
        name
        for name, cls in classes.items()
        if len(init_fields(cls)) > 3 and not all(f.kw_only for f in init_fields(cls))
    }
    assert positional - POSITIONAL == set(), "make these keyword-only, or list them with the reason"
    assert POSITIONAL - positional == set(), "these are keyword-only (or gone) now: take them off the list"


def test_a_positional_construction_is_refused() -> None:
    with pytest.raises(TypeError):
        midstream.BlockStart(0, "text")  # type: ignore[misc]
    assert midstream.BlockStart(index=0, type="text").index == 0
