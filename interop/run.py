"""Run popular clients against the simulator and compare the matrix of results with the last run's.

Usage (``make interop`` installs the clients first)::

    python interop/run.py [--update] [CLIENT ...]

Starts the simulator on a free loopback port with ``interop/scenarios.yaml``, runs the Python clients
(``interop/py_clients.py`` in ``interop/.venv``) and the Vercel AI SDK (``interop/js/clients.mjs`` under
Node), prints the matrix (one row per client and provider, one column per case) and exits 1 when a cell
differs from ``interop/matrix.json``, the stored result of the previous run. ``--update`` stores this
run's matrix instead. The matrix is printed as the README's Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from midstream.sim import running

HERE = Path(__file__).resolve().parent
STORED = HERE / "matrix.json"
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
Matrix = dict[str, str]  # "client provider case" -> outcome


def collect(url: str, clients: list[str]) -> Matrix:
    """Every cell of this run, from the client scripts' JSON lines."""
    commands = []
    if not clients or set(clients) - {"vercel-ai"}:
        python = HERE / ".venv" / "bin" / "python"
        commands.append(
            [str(python), str(HERE / "py_clients.py"), url, *[c for c in clients if c != "vercel-ai"]]
        )
    if not clients or "vercel-ai" in clients:
        commands.append(["node", str(HERE / "js" / "clients.mjs"), url])
    matrix: Matrix = {}
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        for line in done.stdout.splitlines():
            if line.startswith("{"):
                cell = json.loads(line)
                matrix[f"{cell['client']} {cell['provider']} {cell['case']}"] = cell["outcome"]
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-2000:])
            matrix[f"{Path(command[1]).name} - run"] = f"fail: exit {done.returncode}"
    return matrix


def table(matrix: Matrix) -> str:
    """The matrix as a Markdown table: ✓ passed, ✗ failed (footnoted), – not applicable."""  # noqa: RUF002
    rows: dict[str, dict[str, str]] = {}
    for key, outcome in matrix.items():
        client, provider, case = key.split(" ", 2)
        rows.setdefault(f"{client} | {provider}", {})[case] = outcome
    notes: list[str] = []
    lines = ["| client | provider | " + " | ".join(CASES) + " |", "| --- | --- |" + " --- |" * len(CASES)]
    for row, cells in rows.items():
        marks = []
        for case in CASES:
            outcome = cells.get(case, "")
            if outcome == "ok":
                marks.append("✓")
            elif outcome == "n/a":
                marks.append("–")  # noqa: RUF001 - the table's mark for not applicable
            else:
                notes.append(f"{row.replace(' | ', ' on ')}, {case}: {outcome.removeprefix('fail: ')}")
                marks.append(f"✗{len(notes)}")
        lines.append(f"| {row} | " + " | ".join(marks) + " |")
    return "\n".join(lines + [""] + [f"{n}. {note}" for n, note in enumerate(notes, 1)])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "clients",
        nargs="*",
        help="only these clients (pydantic-ai, openai-agents, langchain, litellm, ollama, vercel-ai)",
    )
    parser.add_argument(
        "--update", action="store_true", help="store this run's matrix as the one to compare with"
    )
    args = parser.parse_args()
    with running(HERE / "scenarios.yaml", speed=0, seed=1) as url:
        matrix = collect(url, args.clients)
    print(table(matrix))
    if args.update or not STORED.exists():
        STORED.write_text(json.dumps(dict(sorted(matrix.items())), indent=1, ensure_ascii=False) + "\n")
        return 0
    stored = json.loads(STORED.read_text())
    changed = [k for k in sorted(set(matrix) | set(stored)) if k in matrix and matrix.get(k) != stored.get(k)]
    for key in changed:
        print(f"CHANGED {key}: {stored.get(key, '(new)')} -> {matrix[key]}", file=sys.stderr)
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
