"""End to end in a real browser: `streamlit run` on 127.0.0.1, Debian chromium driven by Playwright.

Runs a selection on an uploaded CSV task with the tiny model, clicks a square of the correlation heatmap (which
opens that feature), opens Steer, generates, switches a layer off in the settings table and checks that the
steered generation changes. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.screenshots import full_screenshot, launch, open_page, wait_idle
from tests.app.conftest import APP, STARTS_WITH, task_csv

pytestmark = pytest.mark.browser

ROOT = APP.parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("streamlit did not become healthy")


@pytest.fixture
def server(app_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Debian chromium is not installed at {CHROMIUM}")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright (python) is not installed")
    port = _free_port()
    env = {**os.environ, **app_env, "CORRSTEER_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("CORRSTEER_APP_INLINE_JOBS", None)
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "browser-streamlit.log").open("w")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _steered_text(page) -> str:
    column = page.locator('[data-testid="stColumn"]', has_text="Steered").last
    return column.locator("div[style*='monospace']").inner_text()


def _choose(page, label: str, option: str) -> None:
    """Pick an option of a Streamlit selectbox by its label."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def _toggle_enabled(page, row: int) -> None:
    """Flip one row's 'enabled' checkbox in the settings table (a canvas grid): select the row's first (read-only)
    cell, move right to the 'enabled' column (5th) and press Space, as a keyboard user would."""
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    header = row_height = 35  # Streamlit's default grid geometry
    y = box["y"] + header + row_height * row + row_height / 2
    # The first click may only move focus into the grid; clicking the same cell twice would open its editor
    # overlay, so click a neighbour first, then the row's first cell.
    for x in (box["x"] + box["width"] * 0.25, box["x"] + 20):
        page.mouse.click(x, y)
        page.wait_for_timeout(300)
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    page.wait_for_timeout(300)
    wait_idle(page)


def _upload_task(page, server: str, csv: Path) -> None:
    """Run page: upload the CSV task and set its regex scorer."""
    page.goto(server)
    wait_idle(page)
    page.get_by_text("Upload a CSV / JSONL file").click()
    wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(csv))
    page.get_by_text("72 items").wait_for()
    wait_idle(page)
    _choose(page, "Scorer", "regex")
    options = page.get_by_label("Scorer options", exact=False)
    options.fill(STARTS_WITH)
    options.press("Enter")
    wait_idle(page)


def _size_and_select(page) -> None:
    """Run page: small splits, then run the selection and wait for its profile."""
    for label, value in (
        ("Max new tokens", "8"),
        ("Selection (train)", "36"),
        ("Validation", "8"),
        ("Test", "12"),
    ):
        page.get_by_label(label, exact=True).fill(value)
        page.get_by_label(label, exact=True).press("Enter")
        wait_idle(page)
    page.get_by_role("button", name="Run selection").click()
    page.get_by_text("Selected profile steers").wait_for(timeout=120_000)
    wait_idle(page)


def _run_selection(page, server: str, csv: Path) -> None:
    _upload_task(page, server, csv)
    _size_and_select(page)
    full_screenshot(page, ARTIFACTS / "browser-1-run.png")


def _click_a_heatmap_square(page) -> None:
    """Correlations: clicking a candidate's square opens that feature on the Features page."""
    open_page(page, "Correlations")
    squares = page.locator(".js-plotly-plot .scatterlayer .points path")
    squares.first.wait_for()
    squares.nth(1).scroll_into_view_if_needed()
    box = squares.nth(1).bounding_box()  # layer 0's second-ranked candidate: not one of the selected features
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # plotly's drag layer is on top
    page.locator('h1:has-text("Features")').wait_for()
    wait_idle(page)
    assert page.get_by_text("Feature detail").count() == 1
    full_screenshot(page, ARTIFACTS / "browser-2-feature.png")


def _toggle_and_compare(page) -> None:
    open_page(page, "Steer")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text("Unsteered").first.wait_for()
    wait_idle(page)
    steered_on = _steered_text(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "steering layers 0, 1, 2, 3" in sidebar.inner_text()
    full_screenshot(page, ARTIFACTS / "browser-3-steered.png")
    expected = {
        0: "steering layers 1, 2, 3",
        1: "steering layers 2, 3",
        2: "steering layer 3",
        3: "steering no layer",
    }
    for row in range(4):  # switch layers off one by one until the steered reply changes (usually the first)
        _toggle_enabled(page, row)
        page.get_by_text(expected[row]).wait_for(timeout=60_000)
        wait_idle(page)
        page.get_by_role("button", name="Generate", exact=True).click()  # generation happens on request
        page.get_by_text("Steered").first.wait_for()
        wait_idle(page)
        if _steered_text(page) != steered_on:
            break
    assert _steered_text(page) != steered_on, "switching layers off never changed the steered generation"
    assert page.get_by_text("Generated with an earlier version").count() == 0  # regenerated for the new settings
    full_screenshot(page, ARTIFACTS / "browser-4-toggled.png")


def test_run_toggle_a_layer_and_see_the_generation_change(server: str, tmp_path: Path) -> None:
    csv = tmp_path / "hi.csv"
    csv.write_bytes(task_csv())
    with launch(CHROMIUM) as page:
        try:
            _run_selection(page, server, csv)
            _click_a_heatmap_square(page)
            _toggle_and_compare(page)
        except BaseException:
            full_screenshot(page, ARTIFACTS / "browser-failure.png")
            raise
