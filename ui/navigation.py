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
    url_path: str
    default: bool = False

    def visible_to(self, actor: Actor) -> bool:
        return any(actor.can(p) for p in self.permissions)


# URL paths differ from the file names on purpose: Streamlit still knows the old "pages/ folder" routing, in
# which a URL equal to a file's name runs that file alone, without app.py and its login gate.
PAGES: tuple[PageSpec, ...] = (
    PageSpec("home", "pages/home.py", ":material/dashboard:", "overview", ("home",), "dashboard", default=True),
    PageSpec("inbox", "pages/inbox.py", ":material/inbox:", "sales", ("inbox",), "mql-inbox"),
    PageSpec("import", "pages/import_leads.py", ":material/upload_file:", "marketing", ("import",), "channel-import"),
    PageSpec("dedup", "pages/dedup.py", ":material/join_inner:", "marketing", ("dedup", "dedup_view"), "dedup-review"),
    PageSpec("rules", "pages/rules.py", ":material/rule:", "marketing", ("rules", "edit_mql"), "scoring-rules"),
    PageSpec("workflows", "pages/workflows.py", ":material/account_tree:", "marketing", ("workflows",), "automations"),
    PageSpec("journeys", "pages/journeys.py", ":material/timeline:", "insight", ("journeys",), "lead-journeys"),
    PageSpec("accounts", "pages/accounts.py", ":material/domain:", "insight", ("accounts",), "abm-accounts"),
    PageSpec("reports", "pages/reports.py", ":material/monitoring:", "insight", ("reports",), "analytics"),
    PageSpec("admin", "pages/admin.py", ":material/settings:", "admin", ("admin",), "settings"),
)
SECTIONS = ("overview", "sales", "marketing", "insight", "admin")


def pages_for(actor: Actor) -> list[PageSpec]:
    """The pages ``actor``'s role opens, in sidebar order. A page not in this list cannot be reached."""
    return [page for page in PAGES if page.visible_to(actor)]
