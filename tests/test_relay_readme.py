"""The README's curl session against a relay that runs like ``midstream serve --sim``."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from midstream.cli.commands import DEFAULT_MODELS
from midstream.cli.examples import TOOLS, scenario_book
from midstream.relay.runner import AgentFactory
from midstream.relay.serve import RelayURL, running
from midstream.sim import running as sim_running

README = Path(__file__).resolve().parent.parent / "README.md"


def curl_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The relay") :]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return next(b for b in blocks if b.startswith("RELAY="))


@pytest.fixture
def relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RelayURL]:
    monkeypatch.setenv("MIDSTREAM_ARTICLE_DIR", str(tmp_path))
    with sim_running(scenario_book(), speed=1.0) as sim:
        factory = AgentFactory(base_url=sim, api_key="sim-key", tools=TOOLS, default_models=DEFAULT_MODELS)
        with running("memory", factory=factory) as url:
            yield url


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_session_runs(relay: RelayURL) -> None:
    script = curl_block().replace("RELAY=http://127.0.0.1:8787", f"RELAY={relay}", 1)
    assert f"RELAY={relay}" in script
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    _, first, second = done.stdout.split("retry: 3000\n\n")
    ids = [int(i) for i in re.findall(r"^id: (\d+)$", first, flags=re.M)]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 6
    assert first.rstrip().splitlines()[-1].startswith('data: {"kind":"run_end"')
    assert [int(i) for i in re.findall(r"^id: (\d+)$", second, flags=re.M)] == list(range(6, len(ids) + 1))
    assert f'{{"state":"ended","last_seq":{len(ids)},"terminal":"completed"' in second
    assert '"cancel_requested":true' in second
    last = [line for line in second.splitlines() if line.strip()][-1]
    assert '"kind":"run_end"' in last and '"terminal":"cancelled"' in last
