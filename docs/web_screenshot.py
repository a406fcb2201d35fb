"""Take docs/web-page.png: the web page mid-stream, a tool field typing out (``make screenshot``).

Starts the relay on the embedded simulator (the example tools and scenarios, as ``midstream serve
--sim`` does, with save_article's arguments streamed eagerly), sends "Write an article about partial
safety", and shoots
the page while the ``content`` field is still arriving. Uses Debian's chromium; downloads nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from midstream.cli.examples import TOOLS, scenario_book
from midstream.config import Settings
from midstream.relay.runner import AgentFactory
from midstream.relay.serve import running
from midstream.sim import running as sim_running


def main(out: Path) -> None:
    eager = Settings.from_mapping({"streaming": {"eager": {"tools": {"save_article": True}}}})
    factory = AgentFactory(base_url=None, api_key="sim-key", model="sim-model", tools=TOOLS, settings=eager)
    with tempfile.TemporaryDirectory() as articles, sim_running(scenario_book(), speed=0.5) as sim:
        os.environ["MIDSTREAM_ARTICLE_DIR"] = articles  # the article the run saves goes away with it
        factory.base_url = sim
        with running("memory", factory=factory) as url, sync_playwright() as playwright:
            shoot(playwright, url, out)
    print(f"wrote {out}")


def shoot(playwright: Any, url: str, out: Path) -> None:
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1000, "height": 640}, device_scale_factor=1)
    page.goto(f"{url}/")
    page.fill("#prompt", "Write an article about partial safety")
    page.click("#send")
    field = page.locator('.tool dd[data-field="content"][data-complete="false"]')
    deadline = time.monotonic() + 30
    while not (field.count() and len(field.text_content() or "") > 120):
        if time.monotonic() > deadline:
            page.screenshot(path=str(out.with_suffix(".failed.png")))
            raise SystemExit(f"the content field never started typing out: {page.inner_text('main')}")
        time.sleep(0.02)
    page.screenshot(path=str(out))
    browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/web-page.png"))
