"""Take a screenshot of every page of a running corrsteer app, for the docs.

    streamlit run app/streamlit_app.py &          # or: corrsteer app
    python -m app.screenshots --url http://localhost:8501 --out docs/screenshots [--evaluate]

All pages are visited in one browser session (Streamlit keeps state per session), after reopening the newest
saved run on the Run page so that the other pages have something to show; on Steer it generates (and with
--evaluate runs the test evaluation and the scale sweep). Uses Debian's chromium through
Playwright (never a downloaded browser). The helpers here are shared with the end-to-end browser test.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM", "PAGES", "full_screenshot", "launch", "main", "open_page", "take_screenshots", "wait_idle"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGES = ("Run", "Correlations", "Features", "Steer", "Profiles")
_CONTENT_HEIGHT_JS = """() => Math.max(document.body.scrollHeight,
  ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')]
     .map(e => e.scrollHeight))"""


@contextmanager
def launch(executable: str = CHROMIUM, width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A Playwright page in headless Debian chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def wait_idle(page: Any, timeout: float = 120.0, settle: float = 0.6) -> None:
    """Wait until the app has rendered and nothing is in progress (no 'Running…' widget, skeleton or spinner)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        skeleton = page.locator('[data-testid="stSkeleton"]').count() > 0
        spinner = page.locator('[data-testid="stSpinner"]').count() > 0  # st.spinner around slow work
        if running or skeleton or spinner:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the app was still running after {timeout:.0f} s")


def full_screenshot(page: Any, path: Path | str, max_height: int = 8000) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main container, so grow the viewport first."""
    size = page.viewport_size or {"width": 1400, "height": 1000}
    height = page.evaluate(_CONTENT_HEIGHT_JS)
    page.set_viewport_size({"width": size["width"], "height": int(min(max(height, size["height"]), max_height))})
    try:
        time.sleep(0.3)
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)


def open_page(page: Any, title: str) -> None:
    """Click the sidebar navigation link of a page (same session) and wait for it to render."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_selector(f'h1:has-text("{title}")')
    wait_idle(page)


def _open_run(page: Any, run_id: str | None = None) -> bool:
    """Open a saved run on the Run page (the newest one, or ``run_id``); False when there is none to open."""
    button = page.get_by_role("button", name="Open with the method above")
    try:  # the saved-runs section renders after the form
        button.first.wait_for(timeout=30_000)
    except Exception:  # playwright's TimeoutError: no saved run
        return False
    if run_id is not None:
        box = page.get_by_test_id("stSelectbox").filter(has_text="Run to open").first.locator("input")
        box.click()
        box.fill(run_id)  # the list filters as you type
        option = page.get_by_role("option").filter(has_text=run_id)
        try:
            option.first.wait_for(timeout=10_000)
        except Exception:  # playwright's TimeoutError
            raise SystemExit(f"no saved run {run_id!r} for this preset (see the Run page's Saved runs)") from None
        option.first.click()
        wait_idle(page)
    button.first.click()
    # the status widget appears only after the click reaches the server: wait for the outcome itself, which
    # may be a failure (e.g. a run with no correct sample cannot be selected from)
    opened = page.get_by_text("Open Correlations to see why")
    failed = page.get_by_text(re.compile(r"^Opening \S+ failed"))
    opened.or_(failed).first.wait_for(timeout=600_000)
    wait_idle(page, timeout=600)
    if failed.count():
        print(f"the newest run could not be opened: {failed.first.inner_text()}", file=sys.stderr)
        return False
    return True


def _fill_steer(page: Any, evaluate: bool) -> None:
    """Show results on the Steer page: a generation, and (slow on a real model) the test evaluation and sweep."""
    generate = page.get_by_role("button", name="Generate", exact=True)
    if generate.count():
        generate.first.click()
        time.sleep(2)  # let the run start before waiting for it to end
        wait_idle(page, timeout=300)
    if not evaluate or page.get_by_role("button", name="Evaluate").count() == 0:
        return
    for button, done in (("Evaluate", "McNemar p"), ("Scale sweep", "Accuracy against the global scale")):
        page.get_by_role("button", name=button).first.click()
        page.get_by_text(done).first.wait_for(timeout=1_800_000)
        wait_idle(page)


def take_screenshots(
    url: str, out: Path, executable: str = CHROMIUM, evaluate: bool = False, run_id: str | None = None
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with launch(executable) as page:
        page.goto(url)
        wait_idle(page)
        if not _open_run(page, run_id):
            print("no saved run to open: pages other than Run will show their empty state", file=sys.stderr)
        for index, title in enumerate(PAGES, start=1):
            open_page(page, title)
            if title == "Steer":
                _fill_steer(page, evaluate)
            path = out / f"{index:02d}-{title.lower()}.png"
            full_screenshot(page, path)
            shots.append(path)
            print(path)
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:8501")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument(
        "--evaluate", action="store_true", help="also run the test evaluation and scale sweep on the Steer page"
    )
    parser.add_argument("--run", help="open this saved run (default: the newest of the preset)")
    args = parser.parse_args(argv)
    if not Path(args.chromium).is_file():
        print(f"chromium not found at {args.chromium} (apt-get install chromium)", file=sys.stderr)
        return 2
    take_screenshots(args.url, args.out, args.chromium, evaluate=args.evaluate, run_id=args.run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
