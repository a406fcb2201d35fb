"""The web page in a real browser (Debian's Chromium through Playwright) against ``midstream serve``.

A field types out before its block closes; a tool cut by max_tokens shows invalid / truncated and
never runs; Stop closes the provider connection (the simulator logs the disconnect and no token
after it) and the page shows the run cancelled and the side effect compensated; a reload mid-stream
ends with exactly the text of an uninterrupted run; with two relays on Redis the page keeps streaming
after the relay serving it is killed; on a ``serve --queue`` front end Stop reaches the worker running
the run; nothing the model sends executes as HTML or script.
"""

# ruff: noqa: F811  (pytest fixtures imported from the support modules)
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fleetsupport import Process
from midstream.sim import SimURL
from midstream.sim import running as sim_running
from relaysupport import payloads, read_sse, redis_url  # noqa: F401
from websupport import (
    ESSAY,
    FailoverProxy,
    Serve,
    chromium,  # noqa: F401
    page,  # noqa: F401
    serve_args,
    serve_env,
    wait_for,
    web_book,
)

pytestmark = pytest.mark.browser

# Every state a tool panel takes is recorded in the page, in order, by call id.
RECORD_STATES = """() => {
  window.__states = {};
  new MutationObserver((changes) => {
    for (const change of changes) {
      const node = change.target;
      if (!node.classList || !node.classList.contains("tool")) continue;
      const id = node.dataset.callId, state = node.dataset.state;
      const seen = (window.__states[id] ||= []);
      if (seen[seen.length - 1] !== state) seen.push(state);
    }
  }).observe(document.getElementById("transcript"),
             {subtree: true, attributes: true, attributeFilter: ["data-state"]});
}"""
ORDER = ["streaming", "closed", "input complete", "validated", "running", "done", "compensated"]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimURL]:
    with sim_running(web_book(), speed=1.0) as url:
        yield url


@pytest.fixture(scope="module")
def relay(sim: SimURL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("web")
    serve = Serve(*serve_args(sim, "memory", tmp), env=serve_env(tmp))
    yield serve
    serve.stop()


def start_from_page(page: Any, url: str, prompt: str, *, max_tokens: int = 0) -> str:
    page.goto(f"{url}/")
    page.evaluate(RECORD_STATES)
    page.fill("#prompt", prompt)
    if max_tokens:
        page.click(".options summary")  # as a person would: open the options, then type
        page.fill("#max-tokens", str(max_tokens))
    page.focus("#prompt")
    page.keyboard.press("Enter")  # the keyboard path: Enter in the prompt sends
    wait_for(lambda: page.evaluate("location.hash.startsWith('#run=')"))  # (the page's CSP forbids eval)
    return str(page.evaluate("new URLSearchParams(location.hash.slice(1)).get('run')"))


def log_of(url: str, run: str) -> list[dict[str, Any]]:
    """The run's log as far as it is written now (a finished run: all of it)."""
    last = httpx2.get(f"{url}/v1/runs/{run}", timeout=10).json()["last_seq"]
    if last == 0:
        return []
    return payloads(read_sse(f"{url}/v1/runs/{run}/events", stop_after=last)[1])


def wait_end(page: Any) -> str:
    # Present and not empty: before the first render the element has no data-terminal at all.
    page.wait_for_selector("#status[data-terminal]:not([data-terminal=''])")
    return str(page.get_attribute("#status", "data-terminal"))


def states(page: Any) -> dict[str, list[str]]:
    return dict(page.evaluate("window.__states"))


def test_a_field_types_out_while_its_block_is_still_open(page: Any, relay: Serve) -> None:
    run = start_from_page(page, relay.url, "an essay, please")
    field = page.locator('.tool dd[data-field="content"][data-complete="false"]')
    # Wait until the content field shows some text, then read the server's log at that moment.
    wait_for(lambda: len(field.text_content() or "") > 40 if field.count() else False)
    shown = field.text_content() or ""
    log = log_of(relay.url, run)
    tool_block = next(e for e in log if e["kind"] == "block_start" and e["type"] == "tool_call")
    stops = [e for e in log if e["kind"] == "block_stop" and e["index"] == tool_block["index"]]
    assert stops == [], "the page was meant to be read while the block is open"
    assert ESSAY.startswith(shown) and 40 < len(shown) < len(ESSAY)
    assert page.locator(".tool .tool-state").first.text_content() == "streaming"
    assert page.locator(".tool .mode").first.text_content() == "eager"
    assert wait_end(page) == "completed"
    assert page.locator('.tool dd[data-field="content"]').text_content() == ESSAY
    assert page.locator(".tool").get_attribute("data-state") == "done"
    # The panel only moved forward through server-reported states (states reported within one frame
    # are drawn once: the last of them).
    (seen,) = states(page).values()
    assert seen == sorted(seen, key=ORDER.index) and seen[0] == "streaming" and seen[-1] == "done"
    full = log_of(relay.url, run)
    ready = next(e["seq"] for e in full if e["kind"] == "tool_ready")
    block_stop = next(
        e["seq"] for e in full if e["kind"] == "block_stop" and e["index"] == tool_block["index"]
    )
    assert block_stop < ready  # validated is shown only from the server's tool_ready, after the block closed
    assert page.errors == []


def test_a_tool_cut_by_max_tokens_is_invalid_truncated_and_never_runs(page: Any, relay: Serve) -> None:
    run = start_from_page(page, relay.url, "an essay, please", max_tokens=40)
    assert wait_end(page) == "truncated"
    panels = page.locator(".tool")
    assert panels.count() == 3  # the first request and its two retries, each cut
    for n in range(3):
        assert panels.nth(n).get_attribute("data-state") == "invalid"
        assert "Not executed: input truncated" in (panels.nth(n).locator(".why").text_content() or "")
        assert '{"INVALID_JSON":' in (panels.nth(n).locator(".raw").text_content() or "")
    for seen in states(page).values():
        assert "running" not in seen and "validated" not in seen and "done" not in seen
    log = log_of(relay.url, run)
    assert not [e for e in log if e["kind"] in ("tool_ready", "tool_started")]
    assert len([e for e in log if e["kind"] == "retry"]) == 2
    assert "partial" in (page.locator("#status").text_content() or "")
    assert page.errors == []


def test_stop_during_a_long_argument_disconnects_the_provider(
    page: Any, relay: Serve, sim: SimURL, capsys: pytest.CaptureFixture[str]
) -> None:
    run = start_from_page(page, relay.url, "two articles, please")
    # The first article is saved (a side effect), then the second's content streams: stop in there.
    field = page.locator('.tool dd[data-field="content"][data-complete="false"]')
    wait_for(lambda: len(field.text_content() or "") > 30 if field.count() else False)
    before = len(sim.requests())
    clicked = time.monotonic()
    page.click("#stop")
    record = wait_for(
        lambda: next((r for r in sim.requests()[before - 1 :] if r["disconnected"]), None), 10, 0.002
    )
    latency_ms = (time.monotonic() - clicked) * 1000
    assert wait_end(page) == "cancelled"
    assert record["scenario"] == "two articles" and not record["completed"]
    assert record["tokens_after_disconnect"] == 0
    time.sleep(0.3)  # anything generated after the disconnect would show up here
    assert sim.requests()[before - 1]["tokens_after_disconnect"] == 0
    first, second = page.locator(".tool").nth(0), page.locator(".tool").nth(1)
    assert first.get_attribute("data-state") == "compensated"
    assert second.get_attribute("data-state") == "invalid"  # the server's word: its input was cut
    assert "Not executed: input truncated" in (second.locator(".why").text_content() or "")
    assert second.locator('dt:has-text("content") .field-state').text_content() == "incomplete"
    status = page.locator("#status").text_content() or ""
    assert "cancelled" in status and "1 side effect(s) compensated" in status
    assert "running" not in states(page)[second.get_attribute("data-call-id") or ""]
    log = log_of(relay.url, run)
    assert [e["reason"] for e in log if e["kind"] == "cancel"] == ["stopped from the web page"]
    with capsys.disabled():
        print(f"\nStop click -> provider disconnect seen by the simulator: {latency_ms:.0f} ms (2 ms polls)")


def test_reload_mid_stream_resumes_after_the_last_seq_without_duplicating(
    page: Any, relay: Serve, chromium: Any
) -> None:
    run = start_from_page(page, relay.url, "slow, please")
    wait_for(lambda: len(page.evaluate("window.midstream.state()?.text || ''")) > 60)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/events" in r.url else None)
    page.reload()
    assert wait_end(page) == "completed"
    resumed = [u for u in requests if f"/v1/runs/{run}/events" in u]
    after = int(resumed[0].rsplit("after=", 1)[1])
    assert after > 0, "the reloaded page read from the start instead of resuming"
    log = log_of(relay.url, run)
    assert after < log[-1]["seq"], "the reload happened after the run had ended"
    expected = "".join(e["text"] for e in log if e["kind"] == "text_delta")
    assert page.evaluate("window.midstream.state().text") == expected
    assert page.evaluate("window.midstream.state().seq") == log[-1]["seq"]
    # The same run opened fresh (no session storage: a replay from seq 0) renders the same page.
    context = chromium.new_context()
    try:
        fresh = context.new_page()
        fresh.goto(f"{relay.url}/#run={run}")
        fresh.wait_for_selector("#status[data-terminal='completed']")
        assert fresh.inner_text("#transcript") == page.inner_text("#transcript")
        assert fresh.evaluate("window.midstream.state().text") == expected
    finally:
        context.close()
    assert page.locator(".answer h2").text_content() == "Resuming a stream"
    assert page.locator(".answer pre code").get_attribute("data-lang") == "python"


def test_model_output_never_executes(page: Any, relay: Serve) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    start_from_page(page, relay.url, "inject, please")
    assert wait_end(page) == "completed"
    transcript = page.locator("#transcript")
    assert transcript.locator("script, img, iframe, object, embed, b").count() == 0
    hrefs = transcript.locator("a").evaluate_all("(links) => links.map((a) => a.getAttribute('href'))")
    assert hrefs == ["https://example.org/page"]
    text = transcript.inner_text()
    assert "<script>window.__pwned = 'script'" in text and "onerror=" in text and "<b>html</b>" in text
    for unsafe in transcript.locator(".unsafe-link").all():
        unsafe.click()
    assert "<img src=x onerror=" in (page.locator('.tool dd[data-field="title"]').text_content() or "")
    page.goto(f"{relay.url}/#runs")
    page.wait_for_selector("#runs tbody tr[data-run]")
    time.sleep(0.3)
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert page.errors == []


def test_the_run_list_and_a_runs_figures(page: Any, relay: Serve) -> None:
    run = start_from_page(page, relay.url, "a note, please")
    assert wait_end(page) == "completed"
    page.wait_for_selector("#details:not([hidden]) #timeline li")
    figures = dict(
        zip(
            page.locator("#figures dt").all_inner_texts(),
            page.locator("#figures dd").all_inner_texts(),
            strict=True,
        )
    )
    summary = httpx2.get(f"{relay.url}/v1/runs/{run}/summary", timeout=10).json()
    assert figures["Tokens in / out"] == f"{summary['tokens']['input']} / {summary['tokens']['output']}"
    assert summary["ttft_s"] > 0 and figures["Time to first token"].endswith(("ms", "s"))
    assert page.locator("#tool-figures td").nth(0).text_content() == "save_article"
    page.click("a[data-nav='runs']")
    row = page.locator(f"#runs tr[data-run='{run}']")
    row.locator(".tokens").filter(has_text="/").wait_for()
    assert row.locator(".state").text_content() == "completed"
    row.locator("a").click()
    page.wait_for_selector("#status[data-terminal='completed']")
    assert page.locator(".tool").get_attribute("data-state") == "done"


def test_the_page_keeps_streaming_when_its_relay_dies(
    page: Any, sim: SimURL, redis_url: str, tmp_path: Path
) -> None:
    env = serve_env(tmp_path)
    a = Serve(*serve_args(sim, redis_url, tmp_path), env=env)
    b = Serve(*serve_args(sim, redis_url, tmp_path), env=env)
    proxy = FailoverProxy([a.port, b.port])
    try:
        started = httpx2.post(f"{b.url}/v1/runs", json={"prompt": "slow, please"}, timeout=10)
        run = started.json()["id"]  # produced by B; the page reads it through A until A dies
        page.goto(f"{proxy.url}/#run={run}")
        wait_for(lambda: len(page.evaluate("window.midstream.state()?.text || ''")) > 60)
        seq_at_kill = page.evaluate("window.midstream.state().seq")
        a.kill()
        assert wait_end(page) == "completed", f"requests through the proxy: {proxy.log}"
        log = log_of(b.url, run)
        expected = "".join(e["text"] for e in log if e["kind"] == "text_delta")
        assert page.evaluate("window.midstream.state().text") == expected
        assert page.evaluate("window.midstream.state().seq") == log[-1]["seq"]
        events = [r for r in proxy.log if "/events" in r["request"]]
        assert events, f"requests through the proxy: {proxy.log}"
        assert events[0]["upstream"] == a.port
        resumed = [r for r in events if r["upstream"] == b.port]
        assert resumed and resumed[0]["last_event_id"] is not None
        assert resumed[0]["last_event_id"] >= seq_at_kill
    finally:
        proxy.close()
        b.stop()
        a.stop()


def test_stop_on_a_queue_front_end_stops_the_run_on_its_worker(
    page: Any, sim: SimURL, redis_url: str, tmp_path: Path
) -> None:
    """The page on ``serve --queue`` (which executes nothing) with one ``midstream worker``: the fields
    type out from the worker's log, and Stop reaches the worker through the store."""
    env = serve_env(tmp_path)
    front = Serve("--store", redis_url, "--queue", "--heartbeat", "0.5", env=env)
    settings = [a for a in serve_args(sim, redis_url, tmp_path) if a != "--heartbeat" and a != "0.5"]
    worker = Process("worker", *settings, "--lease-ttl", "2", env=env)
    try:
        run = start_from_page(page, front.url, "two articles, please")
        field = page.locator('.tool dd[data-field="content"][data-complete="false"]')
        wait_for(lambda: len(field.text_content() or "") > 30 if field.count() else False)
        before = len(sim.requests())
        page.click("#stop")
        record = wait_for(
            lambda: next((r for r in sim.requests()[before - 1 :] if r["disconnected"]), None), 10, 0.002
        )
        assert wait_end(page) == "cancelled"
        assert record["scenario"] == "two articles" and record["tokens_after_disconnect"] == 0
        first, second = page.locator(".tool").nth(0), page.locator(".tool").nth(1)
        assert first.get_attribute("data-state") == "compensated"
        assert second.get_attribute("data-state") == "invalid"
        log = log_of(front.url, run)
        assert [e["reason"] for e in log if e["kind"] == "cancel"] == ["stopped from the web page"]
        assert log[-1]["kind"] == "run_end" and log[-1]["terminal"] == "cancelled"
        assert not page.errors
    finally:
        worker.stop()
        front.stop()
