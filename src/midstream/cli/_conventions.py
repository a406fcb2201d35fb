"""What every ``midstream`` subcommand shares: the exit-status table, the provider check, the version,
and the notice that says when a command talks to the embedded simulator.

A new subcommand ends with ``raise typer.Exit(exit_code(terminal))`` (or :data:`EXIT_USAGE` for a
usage error) and its ``--help`` shows :data:`EXIT_HELP` through the app's epilog.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import typer

__all__ = [
    "CLIENT_EPILOG",
    "EXIT_CANCELLED",
    "EXIT_CODES",
    "EXIT_COMPLETED",
    "EXIT_FAILED",
    "EXIT_HELP",
    "EXIT_TRUNCATED",
    "EXIT_USAGE",
    "KEY_HELP",
    "check_provider",
    "exit_code",
    "note_simulator",
    "one_of",
    "show_version",
    "usage_message",
]

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TRUNCATED = 3
EXIT_CANCELLED = 130

EXIT_CODES: dict[str, tuple[int, str]] = {
    "completed": (EXIT_COMPLETED, "completed"),
    "failed": (EXIT_FAILED, "failed: a provider or transport error, or input with nothing recognisable"),
    "usage": (EXIT_USAGE, "usage error: a bad option or file, an unknown provider, no key, a port in use"),
    "truncated": (EXIT_TRUNCATED, "truncated: cut by the token limit, or the stream ended early"),
    "cancelled": (EXIT_CANCELLED, "cancelled (Ctrl-C)"),
}
"""Outcome -> (exit status, what it means): one table for every subcommand."""

# "\b" keeps click from re-wrapping the table.
EXIT_HELP = "\b\nExit status (every command):\n" + "\n".join(
    f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.values()
)

KEY_HELP = (
    "Keys are read from the provider's variable (ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY, "
    "AWS credentials or AWS_BEARER_TOKEN_BEDROCK, OLLAMA_API_KEY) and the server from its base-URL "
    "variable (ANTHROPIC_BASE_URL, OPENAI_BASE_URL, GOOGLE_GEMINI_BASE_URL, OLLAMA_HOST); never from "
    "the command line, where other users could read them."
)


CLIENT_EPILOG = KEY_HELP + "\n\n" + EXIT_HELP
"""The epilog of a command that talks to a provider: where keys come from, then the exit statuses."""


def exit_code(terminal: str | None) -> int:
    """The exit status for a stream's or a run's terminal state (``None``: nothing ended: failed)."""
    return EXIT_CODES.get(terminal or "failed", EXIT_CODES["failed"])[0]


def one_of(names: tuple[str, ...], what: str) -> Callable[[str | None], str | None]:
    """An option callback: a value not in ``names`` is a usage error listing them, raised while the
    command line is parsed (before anything starts)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in names:
            raise typer.BadParameter(f"unknown {what} {value!r}; the {what}s are: {', '.join(names)}")
        return value

    return check


def check_provider(value: str | None) -> str | None:
    """``--provider``'s callback (see :func:`one_of`)."""
    from midstream.wire.profiles import PROFILES  # read now: a provider may be registered at run time

    return one_of(tuple(PROFILES), "provider")(value)


def show_version(value: bool) -> None:
    """``--version``: print the version and exit."""
    if value:
        typer.echo(f"midstream {version('midstream')}")
        raise typer.Exit()


def usage_message(exc: Exception) -> str:
    """A usage error as the command line words it (a missing key names the variable and ``--sim``)."""
    from midstream.client.providers import MissingCredentials

    if isinstance(exc, MissingCredentials):
        return (
            f"no key for {exc.provider}: set {exc.env_var}, point --base-url at a local server, "
            "or add --sim to ask the embedded simulator"
        )
    return str(exc)


def note_simulator(url: Any, *, how: str) -> None:
    """Say on stderr (so ``--json`` output stays clean) that the answers come from the simulator."""
    sys.stderr.write(f"simulator: answers come from the embedded provider simulator at {url} ({how})\n")
    sys.stderr.flush()
