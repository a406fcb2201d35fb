"""Runs the real JavaScript clients (AI SDK, AG-UI) on bytes our adapters wrote, under Node.

``tests/js`` pins the npm packages (``package.json`` + ``package-lock.json``); ``make test`` installs
them with ``npm ci``, and :func:`run_clients` does it too when they are missing. ``tests/js/clients.mjs``
reads a JSON list of cases on stdin and prints one result per case (see its header).
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


@functools.cache
def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "Node.js is needed for the client-parser tests: `make test` installs it (apt-get install nodejs)"
        )
    lock = JS_DIR / "package-lock.json"
    installed = JS_DIR / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install the pinned client parsers in tests/js")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in tests/js failed:\n{done.stderr[-4000:]}")
    return node


def run_clients(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feed each case to its client in one Node process; one result per case, in order."""
    done = subprocess.run(
        [_node(), str(JS_DIR / "clients.mjs")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"the client runner failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    results: list[dict[str, Any]] = json.loads(done.stdout)
    assert len(results) == len(cases)
    return results
