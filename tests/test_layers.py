"""The layers are the imports: read from the source with ``ast``, every import goes down, never up.

vocabulary (``events``, ``message``, ``errors``) -> ``wire`` (with its timeline) -> ``core`` ->
``client`` -> ``agent`` -> ``workflow`` -> services (``sim``, ``relay``, ``testing``) -> ``worker`` ->
``cli``. A module may import its own layer and the layers below it; no module imports another
package's private module. The sans-IO layers import no third-party package at all, which a fresh
interpreter checks (msgspec, the payload parser, is imported when the first payload is parsed; see
``midstream.wire._payload``).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

# Lowest first. A module's layer is the longest prefix listed here.
LAYERS: list[tuple[str, ...]] = [
    ("midstream.events", "midstream.message", "midstream.errors", "midstream.request"),
    ("midstream.wire",),
    ("midstream.core",),
    ("midstream.client", "midstream.metrics"),
    ("midstream.agent", "midstream.config", "midstream.telemetry"),
    ("midstream.workflow",),  # agents handing work to agents: uses the agent layer, serves the services
    ("midstream.sim",),
    ("midstream.relay", "midstream.testing"),
    ("midstream.worker",),
    ("midstream.cli",),
    ("midstream", "midstream.__main__"),
]

# Imports that cross a line on purpose, each with its reason. Empty is the goal.
ALLOWED: dict[tuple[str, str], str] = {}

SANS_IO = (
    "midstream.events",
    "midstream.message",
    "midstream.errors",
    "midstream.request",
    "midstream.wire",
    "midstream.core",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """The midstream modules ``name`` imports at run time (``TYPE_CHECKING`` blocks excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    modules = _modules()
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                # ``from midstream.wire import timeline`` imports the submodule
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in modules else target, node.lineno))
    return [(target, line) for target, line in found if target.split(".")[0] == "midstream"]


def _layer(module: str) -> int:
    best, rank = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS"
    return rank


def _private_to_another_package(importer: str, target: str) -> bool:
    """True when ``target`` is a ``_private`` module of a package that does not contain ``importer``."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:i])
            return not (importer == owner or importer.startswith(owner + "."))
    return False


def _edges() -> list[tuple[str, str, int]]:
    return [
        (name, target, line) for name, path in _modules().items() for target, line in _imports(name, path)
    ]


def test_the_walk_sees_the_known_imports() -> None:
    edges = {(a, b) for a, b, _ in _edges()}
    assert ("midstream.wire._base", "midstream.wire.timeline") in edges
    assert ("midstream.cli.commands", "midstream.cli.view") in edges
    assert ("midstream.agent._run", "midstream.client.stream") in edges


def test_every_module_has_a_layer() -> None:
    for name in _modules():
        _layer(name)


def test_no_module_imports_a_layer_above_it() -> None:
    upward = [
        f"{a}:{line} imports {b}"
        for a, b, line in _edges()
        if _layer(b) > _layer(a) and (a, b) not in ALLOWED
    ]
    assert upward == []


def test_no_module_imports_another_packages_private_module() -> None:
    leaks = [
        f"{a}:{line} imports {b}"
        for a, b, line in _edges()
        if _private_to_another_package(a, b) and (a, b) not in ALLOWED
    ]
    assert leaks == []


def test_the_allowed_exceptions_are_still_needed() -> None:
    edges = {(a, b) for a, b, _ in _edges()}
    assert [pair for pair in ALLOWED if pair not in edges] == []


def test_the_layer_rules_can_fail() -> None:
    assert _layer("midstream.agent.examples") > _layer("midstream.client.stream")
    assert _layer("midstream.wire.timeline") < _layer("midstream.core.accumulate")
    assert _private_to_another_package("midstream.sim.server", "midstream.wire._base")
    assert not _private_to_another_package("midstream.wire.anthropic", "midstream.wire._base")
    assert not _private_to_another_package("midstream.client", "midstream.client._providers.gemini")


_PROBE = """
import importlib, json, sys
before = set(sys.modules)  # what site put there (a .pth file may import a package)
for name in sys.argv[1:]:
    importlib.import_module(name)
import midstream.wire as wire
for dialect in wire.DIALECTS:
    wire.decoder(dialect)
    wire.encoder(dialect)
roots = {m.split(".")[0] for m in set(sys.modules) - before}
print(json.dumps(sorted(roots - set(sys.stdlib_module_names) - {"midstream", "__main__"})))
"""


def test_the_sans_io_layers_import_no_third_party_package() -> None:
    names = [n for n in _modules() if n.startswith(SANS_IO)]
    assert "midstream.wire.timeline" in names
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *names], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize(
    "statement", ["import midstream", "import midstream.wire", "from midstream import Event"]
)
def test_importing_the_package_loads_neither_pydantic_nor_httpx2(statement: str) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = {line.rpartition("|")[2].strip().split(".")[0] for line in done.stderr.splitlines()}
    assert "midstream" in loaded
    assert not loaded & {"pydantic", "httpx2", "httpx", "anyio", "rich", "typer", "starlette"}


def test_a_name_is_imported_when_first_used() -> None:
    probe = "import sys, midstream; midstream.Agent; print('pydantic' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "True"


def test_the_lazy_table_agrees_with_the_type_checking_imports() -> None:
    import midstream

    tree = ast.parse((SRC / "midstream" / "__init__.py").read_text(encoding="utf-8"))
    declared: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                declared.update((alias.name, stmt.module) for alias in stmt.names)
    assert declared == midstream._EXPORTS
    assert sorted(declared) == sorted(n for n in midstream.__all__ if n != "__version__")
