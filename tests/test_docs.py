"""The API reference: every public name has a docstring with an example that runs, and the site builds.

``make docs`` builds ``docs/`` with mkdocs and mkdocstrings in strict mode (a warning fails the build);
this test builds it the same way into a temporary directory. Docstrings are read the way the reference
site reads them (griffe, from the source), so a type alias's docstring, which Python does not keep at
run time, counts too. Each example is a doctest and runs here.
"""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path
from typing import Any

import griffe
import pytest

import midstream

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = [name for name in midstream.__all__ if name != "__version__"]
PACKAGE = griffe.load("midstream", search_paths=[str(ROOT / "src")])


def docstring_of(name: str) -> str:
    obj: Any = PACKAGE[name]
    target = obj.final_target if obj.is_alias else obj
    return target.docstring.value if target.docstring is not None else ""


def test_every_public_name_has_a_docstring_with_an_example() -> None:
    missing = [name for name in PUBLIC if ">>>" not in docstring_of(name)]
    assert not missing, f"public names whose docstring has no example (>>>): {missing}"


@pytest.mark.parametrize("name", PUBLIC)
def test_the_example_runs(name: str) -> None:
    text = docstring_of(name)
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {"midstream": midstream}, f"midstream.{name}", None, 0)
    assert test.examples, f"midstream.{name} has no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_the_reference_site_builds_strictly_and_lists_every_public_name(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    page = (site / "reference" / "midstream" / "index.html").read_text(encoding="utf-8")
    absent = [name for name in PUBLIC if f'id="midstream.{name}"' not in page]
    assert not absent, f"not on the reference page: {absent}"
