"""The app's pages, in one place: the router builds its navigation from this list and pages link by key."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAGES", "PageInfo", "page_path"]


@dataclass(frozen=True)
class PageInfo:
    key: str
    title: str
    icon: str

    @property
    def path(self) -> str:
        return f"app_pages/{self.key}.py"


PAGES = (
    PageInfo("run", "Run", ":material/play_arrow:"),
    PageInfo("correlations", "Correlations", ":material/grid_on:"),
    PageInfo("features", "Features", ":material/search:"),
    PageInfo("steer", "Steer", ":material/tune:"),
    PageInfo("profiles", "Profiles", ":material/save:"),
)


def page_path(key: str) -> str:
    """The script path of the page named ``key`` (KeyError for a page that does not exist)."""
    return {p.key: p.path for p in PAGES}[key]
