"""The page map: which screens exist, where they sit in the sidebar and which permission opens each."""

from __future__ import annotations

from dataclasses import dataclass

from core.auth import Actor


@dataclass(frozen=True)
class PageSpec:
    key: str
    path: str
    icon: str
    section: str
    permissions: tuple[str, ...]  # any one of them opens the page
    default: bool = False

    def visible_to(self, actor: Actor) -> bool:
        return any(actor.can(p) for p in self.permissions)


PAGES: tuple[PageSpec, ...] = (
    PageSpec("home", "pages/home.py", ":material/dashboard:", "overview", ("home",), default=True),
    PageSpec("inbox", "pages/inbox.py", ":material/inbox:", "sales", ("inbox",)),
    PageSpec("import", "pages/import_leads.py", ":material/upload_file:", "marketing", ("import",)),
    PageSpec("dedup", "pages/dedup.py", ":material/join_inner:", "marketing", ("dedup", "dedup_view")),
    PageSpec("rules", "pages/rules.py", ":material/rule:", "marketing", ("rules",)),
    PageSpec("workflows", "pages/workflows.py", ":material/account_tree:", "marketing", ("workflows",)),
    PageSpec("journeys", "pages/journeys.py", ":material/timeline:", "insight", ("journeys",)),
    PageSpec("accounts", "pages/accounts.py", ":material/domain:", "insight", ("accounts",)),
    PageSpec("reports", "pages/reports.py", ":material/monitoring:", "insight", ("reports",)),
    PageSpec("admin", "pages/admin.py", ":material/settings:", "admin", ("admin",)),
)
SECTIONS = ("overview", "sales", "marketing", "insight", "admin")


def pages_for(actor: Actor) -> list[PageSpec]:
    """The pages ``actor``'s role opens, in sidebar order. A page not in this list cannot be reached."""
    return [page for page in PAGES if page.visible_to(actor)]
