"""Without ``../shared`` beside the checkout the suite stops with one message saying where the data goes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _checkout_without_shared(tmp_path: Path) -> Path:
    tests = tmp_path / "checkout" / "tests"
    tests.mkdir(parents=True)
    for name in ("wiresupport.py", "test_anthropic.py", "test_partial_json.py"):
        shutil.copy(TESTS / name, tests / name)
    return tests


def test_missing_shared_data_stops_the_run_with_one_clear_message(tmp_path: Path) -> None:
    tests = _checkout_without_shared(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tests.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output  # interrupted: errors during collection, no test ran
    shared = tmp_path / "shared"
    assert f"from {shared}/ (../shared beside the checkout" in output
    assert f"missing: {shared}/recorded, {shared}/conformance" in output
    assert "FileNotFoundError" not in output and "Traceback" not in output and "wiresupport.py:" not in output
    assert "passed" not in output


def test_with_shared_data_present_the_same_modules_collect(tmp_path: Path) -> None:
    tests = _checkout_without_shared(tmp_path)
    (tmp_path / "shared").symlink_to(TESTS.parent.parent / "shared")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", str(tests)],
        cwd=tests.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
