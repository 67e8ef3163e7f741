"""Outside text stays inert in a real browser: a reply that carries Markdown or HTML renders as text.

A loopback HTTP server stands in for an attacker's host and counts what the browser fetches from it. A small
Streamlit script renders a hostile reply through the app's own renderers (the Steer page's side-by-side diff and
the Features page's highlighted tokens). As a check that the test can see an attack at all, the same script with
``?control=1`` renders it the way the pages used to (HTML escaped only), and the browser must then fetch the image.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from app.screenshots import launch, wait_idle
from tests.app.test_browser import CHROMIUM, ROOT, _free_port, _wait_healthy

pytestmark = pytest.mark.browser

SCRIPT = """
import html, sys
import streamlit as st
sys.path.insert(0, {root!r})
from app.ui.text import diff_html, highlight_tokens_html

reply = "Hello\\n\\n![x]({pixel}) [click](http://127.0.0.1:9/) <img src='{pixel}?html'> **bold**"
if st.query_params.get("control"):
    st.markdown(f"<div>{{html.escape(reply)}}</div>", unsafe_allow_html=True)
else:
    st.markdown(diff_html("Hello", reply, "after"), unsafe_allow_html=True)
    st.markdown(diff_html(reply, "Hello", "before"), unsafe_allow_html=True)
    st.markdown(highlight_tokens_html(reply.split(" "), [1.0] * len(reply.split(" "))), unsafe_allow_html=True)
st.write("rendered")
"""


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()
        self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pixel_server() -> Iterator[str]:
    _Counter.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pixel.png"
    finally:
        server.shutdown()


@pytest.fixture
def hostile_page(tmp_path: Path, pixel_server: str) -> Iterator[str]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Debian chromium is not installed at {CHROMIUM}")
    script = tmp_path / "hostile.py"
    script.write_text(SCRIPT.format(root=str(ROOT), pixel=pixel_server))
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", "127.0.0.1"]
    cmd += ["--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    env = {**os.environ, "CORRSTEER_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def _render(page, url: str) -> None:
    page.goto(url)
    page.get_by_text("rendered").wait_for()
    wait_idle(page)
    page.wait_for_timeout(1000)  # give any image a moment to be requested


def test_markdown_and_html_in_a_reply_do_nothing_in_the_browser(hostile_page: str) -> None:
    with launch() as page:
        _render(page, hostile_page + "/?control=1")
        assert _Counter.hits, "control: the old rendering should have let the browser fetch the image"
        _Counter.hits.clear()
        _render(page, hostile_page)
        main = page.locator('[data-testid="stMain"]')
        assert main.locator("img").count() == 0
        assert main.locator("a[href^='http://127.0.0.1']").count() == 0
        assert main.locator("strong").count() == 0
        text = main.inner_text()
    assert _Counter.hits == [], f"the browser fetched {_Counter.hits}"
    assert "![x](http://127.0.0.1" in text and "**bold**" in text and "<img src=" in text
