"""Message catalogs: both languages complete, every key the code names exists, placeholders agree."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from core.i18n import LANGUAGES, catalog, fmt_money, normalize_language, t

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for folder in ("app.py", "pages", "ui", "core") for p in
           ((ROOT / folder).rglob("*.py") if (ROOT / folder).is_dir() else [ROOT / folder])]
# tr("a.b"), t("a.b", …), key="a.b" in typed errors, label("prefix", …) prefixes.
LITERAL_KEY = re.compile(r"""(?:\btr|\bt)\(\s*["']([a-z_]+(?:\.[a-z0-9_]+)+)["']|key=["']([a-z_]+(?:\.[a-z0-9_]+)+)["']""")


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_the_same_keys():
    zh, en = catalog("zh"), catalog("en")
    assert sorted(set(zh) - set(en)) == [], "keys missing in English"
    assert sorted(set(en) - set(zh)) == [], "keys missing in Chinese"


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_no_key_is_defined_twice(lang):
    """A key written twice would make one of its texts silently win (one column headed by another's words)."""
    seen: dict[str, str] = {}
    twice = []
    for po_file in sorted((ROOT / "core" / "locales" / lang).glob("*.po")):
        for line in po_file.read_text(encoding="utf-8").splitlines():
            if line.startswith('msgid "') and line != 'msgid ""':
                key = line[len('msgid "'):-1]
                if key in seen:
                    twice.append(f"{key} ({seen[key]}, {po_file.name})")
                seen[key] = po_file.name
    assert twice == []


def test_no_message_is_empty_and_placeholders_agree():
    zh, en = catalog("zh"), catalog("en")
    for key in zh:
        assert zh[key].strip() and en[key].strip(), key
        assert _placeholders(zh[key]) == _placeholders(en[key]), key


def test_every_key_named_in_the_code_exists():
    known = set(catalog("zh"))
    missing = []
    for path in SOURCES:
        for match in LITERAL_KEY.finditer(path.read_text(encoding="utf-8")):
            key = match.group(1) or match.group(2)
            if key not in known:
                missing.append(f"{path.relative_to(ROOT)}: {key}")
    assert missing == []


def test_every_enumeration_value_has_a_label_in_both_languages():
    from db.models import (
        AssignmentStatus,
        CandidateStatus,
        EnrollmentStatus,
        ImportStatus,
        LeadStatus,
        Role,
        RuleKind,
        Stage,
        TouchpointKind,
        WorkflowStatus,
    )

    prefixes = {"stage": Stage, "touchpoint": TouchpointKind, "role": Role, "lead_status": LeadStatus,
                "import_status": ImportStatus, "rule_kind": RuleKind, "workflow_status": WorkflowStatus,
                "enrollment_status": EnrollmentStatus, "assignment_status": AssignmentStatus,
                "candidate_status": CandidateStatus}
    for lang in LANGUAGES:
        for prefix, enum in prefixes.items():
            for value in enum:
                assert f"{prefix}.{value.value}" in catalog(lang), (lang, prefix, value)


@pytest.mark.parametrize(("given", "expected"), [("zh-CN", "zh"), ("en-US", "en"), ("en_GB", "en"),
                                                 ("fr-FR", "zh"), (None, "zh"), ("", "zh")])
def test_browser_languages_map_to_a_supported_one(given, expected):
    assert normalize_language(given) == expected


def test_money_reads_naturally_in_each_language():
    assert fmt_money(125_000, "zh") == "¥12.5万"
    assert fmt_money(3.2e8, "zh") == "¥3.20亿"
    assert fmt_money(125_000, "en") == "¥125,000"
    assert fmt_money(980, "zh") == "¥980"


def test_an_unknown_key_comes_back_as_itself_so_tests_can_see_it():
    assert t("no.such.key", "zh") == "no.such.key"
