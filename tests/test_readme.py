"""Every Python code block of README.md and of the pages under docs/ runs, as written, against the simulator.

The one substitution is the environment, as the README says: no provider key is set, and each provider's
standard base-URL variable (``ANTHROPIC_BASE_URL``, ``OPENAI_BASE_URL``, ...) points at a local simulator
(which needs no key). Each block runs in its own interpreter, in an empty directory holding a link to
``examples/``, so files an example writes land there, and it must exit 0 and print something.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from midstream.client.providers import BASE_URL_ENV, ENV_KEYS
from midstream.sim import SimURL, running

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path, root: Path = ROOT) -> list[tuple[str, str]]:
    """``(page:line, code)`` for every fenced ``python`` block of a markdown page."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found.append((f"{page.relative_to(root)}:{line}", match.group(1)))
    return found


BLOCKS = [block for page in PAGES for block in python_blocks(page)]


def test_the_extractor_finds_blocks_and_their_lines(tmp_path: Path) -> None:
    page = tmp_path / "x.md"
    page.write_text("# t\n\n```python\nprint(1)\n```\n\n```sh\nls\n```\n```python\nx = 2\nprint(x)\n```\n")
    assert python_blocks(page, tmp_path) == [("x.md:3", "print(1)\n"), ("x.md:10", "x = 2\nprint(x)\n")]


def test_the_readme_has_python_examples() -> None:
    readme = [where for where, _ in BLOCKS if where.startswith("README.md")]
    assert len(readme) >= 5


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimURL]:
    with running(speed=0) as url:
        yield url


def example_env(url: str) -> dict[str, str]:
    """The environment every example runs in: no key, every provider's base URL at the simulator."""
    env = {k: v for k, v in os.environ.items() if k not in {*ENV_KEYS.values(), "GOOGLE_API_KEY"}}
    for provider, variable in BASE_URL_ENV.items():
        env[variable] = f"{url}/v1" if provider.startswith("openai") else url
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["NO_COLOR"] = "1"
    return env


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_example_runs_against_the_simulator(where: str, code: str, simulator: SimURL, tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    before = len(simulator.simulator.records)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=example_env(simulator),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{where} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), f"{where} printed nothing"
    assert "Traceback" not in done.stderr, done.stderr
    uses_network = "Client(" in code or "httpx2" in code or "running(" in code
    if uses_network and "running(" not in code:  # its own simulator otherwise
        assert len(simulator.simulator.records) > before, f"{where} did not talk to the simulator"
