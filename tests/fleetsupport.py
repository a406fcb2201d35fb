"""Shared pieces of the worker tests and the fleet campaign: tools whose executions are counted in
Redis, the scenarios that call them, and ``midstream serve`` / ``midstream worker`` processes.

The tools are imported by worker processes (``--tools fleetsupport:TOOLS`` with ``tests`` on
``PYTHONPATH``); they find the Redis in ``MIDSTREAM_FLEET_REDIS``. Every execution is pushed to
``fleet:exec:<run>`` (tool, call id, idempotency key): the tests and the campaign count real
executions there, independently of the journal. A tool waits while the key ``fleet:hold`` exists,
after marking ``fleet:entered:<tool>`` with the run id: a test holds it there to kill its worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from midstream import tool
from midstream.agent.effects import current_call

TESTS = Path(__file__).resolve().parent
FAST = "{ttft_ms: 0, tokens_per_second: 100000, jitter: 0}"
STEADY = "{ttft_ms: 20, tokens_per_second: 150, jitter: 0}"
LONG_TEXT = " ".join(["Every entry of this answer has a seq, and a resumed run shows where it resumed."] * 8)
FLEET_SCENARIOS = f"""
scenarios:
  - name: book
    match: {{last_user: "(?i)book", tools: [book_slot]}}
    latency: {FAST}
    turns:
      - blocks: [{{tool_call: {{name: book_slot, input: {{slot: morning}}}}}}]
      - blocks: [{{text: "Booked the morning slot."}}]
  - name: charge
    match: {{last_user: "(?i)charge", tools: [charge_card]}}
    latency: {FAST}
    turns:
      - blocks: [{{tool_call: {{name: charge_card, input: {{cents: 500}}}}}}]
      - blocks: [{{text: "Charged 5.00."}}]
  - name: errand
    match: {{last_user: "(?i)errand", tools: [lookup, book_slot]}}
    latency: {STEADY}
    turns:
      - blocks:
          - text: "Looking it up first."
          - tool_call: {{name: lookup, input: {{topic: slots}}}}
      - blocks:
          - text: "Booking now."
          - tool_call: {{name: book_slot, input: {{slot: evening}}}}
      - blocks: [{{text: "{LONG_TEXT}"}}]
  - name: long
    match: {{last_user: "(?i)long"}}
    latency: {{ttft_ms: 10, tokens_per_second: 60, jitter: 0}}
    turns: [{{blocks: [{{text: "{LONG_TEXT}"}}]}}]
"""


def fleet_book() -> Any:
    import yaml

    from midstream.sim import ScenarioBook

    return ScenarioBook.model_validate(yaml.safe_load(FLEET_SCENARIOS))


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(os.environ["MIDSTREAM_FLEET_REDIS"], decode_responses=True)


def _execute(name: str) -> None:
    """Count one real execution of tool ``name``; wait while a test holds tools."""
    call = current_call()
    run = call.run_id if call is not None else "?"
    r = _redis()
    try:
        r.set(f"fleet:entered:{name}", run or "?")
        record = {
            "tool": name,
            "call": call.call_id if call else None,
            "key": call.idempotency_key if call else None,
        }
        r.rpush(f"fleet:exec:{run}", json.dumps(record))
        deadline = time.monotonic() + 60
        while r.exists("fleet:hold") and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        r.close()


@tool(side_effect=True)
def book_slot(slot: str) -> str:
    """Book a slot (a side effect that must not happen twice).

    Args:
        slot: which slot
    """
    _execute("book_slot")
    return f"booked {slot}"


@tool(side_effect=True, idempotent=True)
def charge_card(cents: int) -> str:
    """Charge the card; the payment service deduplicates by idempotency key.

    Args:
        cents: the amount
    """
    _execute("charge_card")
    return f"charged {cents}"


@tool
def lookup(topic: str) -> str:
    """Look something up (no side effect).

    Args:
        topic: what to look up
    """
    _execute("lookup")
    return f"{topic}: morning and evening are free"


TOOLS = (book_slot, charge_card, lookup)


def executions(redis_url: str, run: str) -> list[dict[str, Any]]:
    import redis

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [json.loads(x) for x in r.lrange(f"fleet:exec:{run}", 0, -1)]
    finally:
        r.close()


def fleet_env(redis_url: str) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": path,
        "ANTHROPIC_API_KEY": "sim-key",
        "MIDSTREAM_FLEET_REDIS": redis_url,
    }


class Process:
    """A ``midstream serve`` or ``midstream worker`` process; ``url`` for serve, ``owner`` for worker."""

    def __init__(self, command: str, *args: str, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "midstream.cli", command, *args]
        if command == "serve":
            argv += ["--port", "0"]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.line = line  # what it said when it started
        self.url = self.owner = ""
        if command == "serve" and "listening on" in line:
            self.url = line.split("listening on ", 1)[1].split()[0]
        elif command == "worker" and line.startswith("midstream worker "):
            self.owner = line.split()[2]
        else:
            self.kill()
            raise AssertionError(f"midstream {command} did not start: {line!r}")

    def kill(self) -> None:
        """kill -9: no cleanup of any kind."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=40)
        self.kill()


def worker(
    redis_url: str, sim_url: str, *extra: str, lease_ttl: float = 1.0, concurrency: int = 8
) -> Process:
    args = ["--store", redis_url, "--base-url", sim_url, "--model", "sim-model", *extra]
    args += [
        "--tools",
        "fleetsupport:TOOLS",
        "--lease-ttl",
        str(lease_ttl),
        "--concurrency",
        str(concurrency),
    ]
    return Process("worker", *args, env=fleet_env(redis_url))


def front_end(redis_url: str, *extra: str) -> Process:
    args = ["--store", redis_url, "--queue", "--heartbeat", "0.5", *extra]
    return Process("serve", *args, env=fleet_env(redis_url))
