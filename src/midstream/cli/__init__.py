"""The ``midstream`` command line and what only it uses: the live view, the guided tour, the agent
console and the example tools of ``midstream run``.

The app lives in :mod:`midstream.cli.commands`; ``app`` and ``main`` are loaded from it on first use, so
that importing :mod:`midstream.cli.view` alone does not build the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from midstream.cli.commands import app, main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from midstream.cli import commands

        return getattr(commands, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
