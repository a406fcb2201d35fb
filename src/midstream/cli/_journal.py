"""``midstream journal check PATH`` and ``midstream journal repair PATH``: the effects journal on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midstream.agent.effects import JournalReport, check_journal, repair_journal

__all__ = ["journal_app"]

journal_app = typer.Typer(
    help="Check or repair an effects journal (.jsonl, or SQLite .db / .sqlite / .sqlite3). A run refuses "
    "a damaged journal; a last line torn by a crash is normal: its effect counts as uncertain.",
    no_args_is_help=True,
)

_PATH = Annotated[Path, typer.Argument(help="The journal file, as passed to Agent(journal=...).")]


def _print(report: JournalReport) -> None:
    for line in report.lines():
        typer.echo(line)


@journal_app.command()
def check(path: _PATH) -> None:
    """Report on a journal; writes nothing.

    Shows the records by status, the effects a crash left uncertain and every damaged line by number.
    Exit status: 0 a run may use it, 1 damaged (run `midstream journal repair`), 2 no such file.
    """
    try:
        report = check_journal(path)
    except OSError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    _print(report)
    if not report.ok:
        raise typer.Exit(1)


@journal_app.command()
def repair(path: _PATH) -> None:
    """Make a damaged journal usable; the original is kept as PATH.bak.

    The copy is mode 0600, like the journal. JSON lines: each damaged line becomes a marker that
    keeps its text; an effect it names counts as uncertain (never re-run by a tool that is not
    idempotent). SQLite: the readable rows are copied into a fresh file; the rows that cannot be
    read are counted (their effects may run again).
    """
    try:
        report = repair_journal(path)
    except OSError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    _print(report)
    if not report.ok:
        raise typer.Exit(1)
