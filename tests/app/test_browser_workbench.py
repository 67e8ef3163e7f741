"""In a real browser (Debian chromium, Playwright): build a profile by hand, read the per-half results of an
evaluation, reload the page and find the same run, page and profile. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.screenshots import full_screenshot, launch, open_page, wait_idle
from tests.app.conftest import task_csv
from tests.app.test_browser import (  # noqa: F401  (the server fixture)
    ARTIFACTS,
    CHROMIUM,
    _size_and_select,
    _upload_task,
    server,
)

pytestmark = pytest.mark.browser


def _run_with_groups(page, url: str, csv: Path) -> None:
    _upload_task(page, url, csv)
    page.get_by_label("Metadata columns (strata, reports)").click()
    page.get_by_role("option", name="group", exact=True).click()
    page.keyboard.press("Escape")
    wait_idle(page)
    _size_and_select(page)


def _add_a_candidate(page) -> tuple[int, int]:
    """Correlations: pick layer 0's second candidate (not the selected one) and add it to the profile."""
    open_page(page, "Correlations")
    box = page.get_by_test_id("stSelectbox").filter(has_text="Or pick a candidate").first
    box.click()
    options = page.get_by_role("option").filter(has_text=re.compile(r"^layer 0 · feature \d+$"))
    options.nth(1).wait_for()
    label = options.nth(1).inner_text()
    options.nth(1).click()
    wait_idle(page)
    page.get_by_role("button", name="Add to the profile").click()
    layer, feature = (int(x) for x in re.findall(r"\d+", label))
    page.get_by_text(f"Layer {layer} now steers feature {feature}").wait_for()
    wait_idle(page)
    return layer, feature


def test_build_a_profile_see_the_halves_and_reload(server: str, tmp_path: Path) -> None:  # noqa: F811
    csv = tmp_path / "hi.csv"
    csv.write_bytes(task_csv())
    with launch(CHROMIUM) as page:
        try:
            _run_with_groups(page, server, csv)
            layer, feature = _add_a_candidate(page)
            open_page(page, "Steer")
            slider = page.get_by_text(f"L{layer} · f{feature} strength")
            slider.wait_for()  # the hand-added feature has its own strength slider
            page.get_by_role("button", name="Evaluate").click()
            page.get_by_text("McNemar p").first.wait_for(timeout=120_000)
            wait_idle(page)
            page.get_by_text("Per half").first.wait_for()
            halves = page.locator('[data-testid="stDataFrame"]').filter(has_text="wrong → right")
            assert halves.count() >= 1
            assert page.get_by_text("Tested:").count() >= 1
            full_screenshot(page, ARTIFACTS / "browser-5-halves.png")

            assert "/steer" in page.url and "run=" in page.url and f"{layer}%3A{feature}%3A" in page.url
            page.reload()
            page.locator('h1:has-text("Steer")').wait_for()
            wait_idle(page)
            page.get_by_text(f"L{layer} · f{feature} strength").wait_for()  # the same profile after a reload
            sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
            assert "Run" in sidebar and "steering" in sidebar
            full_screenshot(page, ARTIFACTS / "browser-6-reloaded.png")
        except BaseException:
            full_screenshot(page, ARTIFACTS / "browser-failure-workbench.png")
            raise
