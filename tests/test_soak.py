"""The short client soak (``bench/soak_streams.py --quick``): 1 and 200 concurrent ``AsyncClient`` streams
against a replay server writing recorded bytes, each in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_two_hundred_concurrent_streams_all_complete_with_every_event() -> None:
    command = [sys.executable, str(ROOT / "bench" / "soak_streams.py"), "--quick", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    one, many = (json.loads(line) for line in done.stdout.strip().splitlines())
    assert (one["streams"], many["streams"]) == (1, 200)
    assert one["completed"] == 1.0 and many["completed"] == 1.0, many["broke"]
    assert one["events"] > 0 and many["events"] == 200 * one["events"]  # nothing lost, nothing twice
    assert many["peak_fds"] < 200 + 100  # one socket a stream, not more
    assert many["cpu_vs_decode"] > 1.0  # measured against the decode-only figure of the same bytes
