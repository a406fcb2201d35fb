"""The short fleet campaign (``bench/fleet_campaign.py --quick``): 40 runs on 2 front-ends and 3 workers,
a worker killed with SIGKILL every two seconds or so, readers dropping and resuming, cancels."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_the_quick_fleet_campaign_loses_nothing_and_repeats_nothing() -> None:
    command = [sys.executable, str(ROOT / "bench" / "fleet_campaign.py"), "--quick", "--json"]
    command += ["--kill-every", "2", "--cancel-share", "0.15"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["runs"] == 40
    assert figures["kills"] >= 1 and figures["resumes"] >= 1, figures  # the campaign did hit runs
    for invariant in ("lost", "double_effects", "bad_terminals", "store_gaps", "reader_gaps_or_duplicates"):
        assert figures[invariant] == 0, (invariant, figures)
    assert sum(figures["terminals"].values()) == 40
    assert figures["executions"] >= 40  # every run executed its tools
