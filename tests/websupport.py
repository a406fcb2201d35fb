"""Shared pieces of the web page tests: Chromium through Playwright, ``midstream serve`` processes,
the scenarios they run, screenshots on failure, and a tiny TCP proxy that fails over between relays.

The browser is Debian's ``chromium`` (``make test`` installs it); nothing is downloaded at test time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("MIDSTREAM_CHROMIUM", "/usr/bin/chromium")

ESSAY = " ".join(
    [
        "Streaming makes an assistant feel fast, but every frame a client holds is incomplete.",
        "A tool call whose arguments are still arriving must not run,",
        "and a value cut by max_tokens must not pass for a complete one.",
    ]
    * 4
)
SLOW_MARKDOWN = (
    "## Resuming a stream\n\nEvery entry of the log has a **seq**: a reader that reconnects asks for the "
    "entries *after* the last one it rendered, so nothing is shown twice.\n\n"
    "- the page keeps the seq in `sessionStorage`\n- a reload restores the text and the seq\n"
    "- the relay replays a finished run\n\n"
    "```python\nfor entry in log.read(run, after=seq):\n    render(entry)\n```\n\n"
    "That is all it takes: one monotonic number per event, and readers that remember it."
)
INJECTION = (
    "Here is <script>window.__pwned = 'script'; alert('script')</script> and "
    "<img src=x onerror=\"window.__pwned = 'img'; alert('img')\"> and a "
    "[link](javascript:window.__pwned='link';alert('link')) and "
    "[another](  JaVaScRiPt:alert('spaced')) and ![pic](javascript:alert('image')) and "
    "<a href=\"javascript:alert('anchor')\">anchor</a> and **bold <b>html</b>** and a "
    "[safe link](https://example.org/page)."
)
TOOL_INJECTION = "<script>window.__pwned='script'</script> [x](javascript:alert(1))"
_STEADY = {"ttft_ms": 50, "tokens_per_second": 45, "jitter": 0}
WEB_SCENARIOS: dict[str, Any] = {
    "scenarios": [
        {
            "name": "essay",
            "match": {"last_user": "(?i)essay", "tools": ["save_article"]},
            "latency": _STEADY,
            "turns": [
                {
                    "blocks": [
                        {"text": "Writing it down."},
                        {
                            "tool_call": {
                                "name": "save_article",
                                "input": {"title": "Streaming", "content": ESSAY},
                            }
                        },
                    ]
                },
                {"blocks": [{"text": "Saved."}]},
            ],
        },
        {
            "name": "two articles",
            "match": {"last_user": "(?i)two articles", "tools": ["save_article"]},
            "latency": _STEADY,
            "turns": [
                {
                    "blocks": [
                        {
                            "tool_call": {
                                "name": "save_article",
                                "input": {"title": "First", "content": "Short."},
                            }
                        }
                    ]
                },
                {
                    "blocks": [
                        {"text": "Now the long one."},
                        {
                            "tool_call": {
                                "name": "save_article",
                                "input": {"title": "Second", "content": ESSAY},
                            }
                        },
                    ]
                },
                {"blocks": [{"text": "Both saved."}]},
            ],
        },
        {
            "name": "note",
            "match": {"last_user": "(?i)note", "tools": ["save_article"]},
            "latency": {"ttft_ms": 20, "tokens_per_second": 1000, "jitter": 0},
            "turns": [
                {
                    "blocks": [
                        {
                            "tool_call": {
                                "name": "save_article",
                                "input": {"title": "Note", "content": "Kept."},
                            }
                        }
                    ]
                },
                {"blocks": [{"text": "Noted."}]},
            ],
        },
        {
            "name": "slow",
            "match": {"last_user": "(?i)slow"},
            "latency": {"ttft_ms": 50, "tokens_per_second": 40, "jitter": 0},
            "turns": [{"blocks": [{"text": SLOW_MARKDOWN}]}],
        },
        {
            "name": "inject",
            "match": {"last_user": "(?i)inject", "tools": ["save_article"]},
            "latency": {"ttft_ms": 0, "tokens_per_second": 2000, "jitter": 0},
            "turns": [
                {
                    "blocks": [
                        {"text": INJECTION},
                        {
                            "tool_call": {
                                "name": "save_article",
                                "input": {
                                    "title": "<img src=x onerror=\"window.__pwned='tool'; alert('tool')\">",
                                    "content": TOOL_INJECTION,
                                },
                            }
                        },
                    ]
                },
                {"blocks": [{"text": "</div><script>alert('end')</script>"}]},
            ],
        },
    ]
}
# Retries without waiting; save_article's arguments stream eagerly (fine-grained), so its fields
# type out as the model writes them.
SERVE_SETTINGS = "[errors.backoff]\nscale = 0.001\n\n[streaming.eager]\ntools = { save_article = true }\n"


def web_book() -> Any:
    from midstream.sim import ScenarioBook

    return ScenarioBook.model_validate(WEB_SCENARIOS)


class Serve:
    """One ``midstream serve`` process (its own process group, so a kill takes all of it)."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "midstream.cli", "serve", "--port", "0", *args]
        # Its log goes to a file, not a pipe nobody reads: a full pipe would stall the server.
        self.log = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.kill()
            said = self.said()
            self.stop()
            raise AssertionError(f"serve did not start: {line!r} {said}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL the whole process group: no goodbye to any client."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()

    def said(self) -> str:
        """What the server wrote to its standard error so far."""
        self.log.seek(0)
        return self.log.read()


def serve_env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ANTHROPIC_API_KEY": "sim-key",
        "MIDSTREAM_ARTICLE_DIR": str(tmp / "articles"),
    }


def serve_args(sim: str, store: str, tmp: Path) -> list[str]:
    settings = tmp / "midstream.toml"
    settings.write_text(SERVE_SETTINGS, encoding="utf-8")
    return [
        "--store", store, "--base-url", sim, "--model", "sim-model",
        "--tools", "midstream.cli.examples:TOOLS", "--settings", str(settings), "--heartbeat", "0.5",
    ]  # fmt: skip


# -- the browser -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Chromium for one test module. Playwright's sync API runs an event loop on this thread while it is
    started, so it is stopped after the module: the tests after it may call ``asyncio.run``."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh browser context and page; on a failed test a screenshot goes under the test's tmp dir."""
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    failed_before = request.session.testsfailed
    yield page
    if request.session.testsfailed > failed_before:
        folder = tmp_path / "screenshots"
        folder.mkdir(exist_ok=True)
        for n, open_page in enumerate(context.pages):
            shot = folder / f"page-{n}.png"
            with contextlib.suppress(Exception):
                open_page.screenshot(path=str(shot), full_page=True)
                print(f"\nscreenshot of the failed test's page: {shot}", file=sys.stderr)
    context.close()


# -- a TCP proxy that fails over --------------------------------------------------------------------


class FailoverProxy:
    """Listens on a loopback port and forwards each connection to the first upstream port that accepts.

    Records each request it carries (its first line, its ``Last-Event-ID``, the upstream it went to),
    so a test can see where a reconnecting page went and from which seq.
    """

    def __init__(self, upstreams: list[int]) -> None:
        self.upstreams = upstreams
        self.log: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="failover proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream = None
        for port in self.upstreams:
            try:
                upstream = (port, *await asyncio.open_connection("127.0.0.1", port))
                break
            except OSError:
                continue
        if upstream is None:
            client_w.close()
            return
        port, up_r, up_w = upstream
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]

        def sniff(data: bytes) -> None:
            # A request head starts a chunk (keep-alive connections carry several requests).
            head = data.decode("latin-1").split("\r\n")
            if head[0].split(" ", 1)[0] not in ("GET", "POST", "HEAD"):
                return
            record: dict[str, Any] = {"upstream": port, "request": head[0], "last_event_id": None}
            for line in head[1:]:
                if line.lower().startswith("last-event-id:"):
                    record["last_event_id"] = int(line.split(":", 1)[1].strip())
            self.log.append(record)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, requests: bool) -> None:
            try:
                while data := await src.read(65536):
                    if requests:
                        sniff(data)
                    dst.write(data)
                    await dst.drain()
            except (OSError, ValueError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        try:
            await asyncio.gather(pipe(client_r, up_w, True), pipe(up_r, client_w, False))
        finally:
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def wait_for(predicate: Any, timeout: float = 20.0, every: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {getattr(predicate, '__name__', predicate)}")
        time.sleep(every)
