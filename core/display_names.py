"""How the names a team gives its things read in each interface language.

Channels, campaigns, tags, groups, rules, workflows, routing rules and product lines are named by the team in
one language (the demo data names them in Chinese). A ``DisplayName`` row gives a name its text in another
interface language, so an English reader sees "Trade shows" where the data says 展会. Names without a label are
shown as they are. Labels are looked up by (kind, name): report columns that already hold names are translated
with one dictionary lookup per distinct value, with no join added to any query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd
from sqlalchemy import delete, select
from sqlmodel import Session

from core import audit
from core.auth import Actor, require
from core.errors import ValidationError
from core.i18n import LANGUAGES
from db.models import Campaign, Channel, DisplayName, Group, RoutingRule, Rule, Tag, Workflow

# kind -> the table and column whose values are names of that kind (product lines are a campaign attribute;
# target lists live in a JSON list on the account, so only their labelled names are listed for editing).
NAMED: dict[str, tuple[type, str] | None] = {
    "channel": (Channel, "name"),
    "campaign": (Campaign, "name"),
    "tag": (Tag, "name"),
    "group": (Group, "name"),
    "rule": (Rule, "name"),
    "workflow": (Workflow, "name"),
    "routing_rule": (RoutingRule, "name"),
    "product_line": (Campaign, "product_line"),
    "target_list": None,
}
KINDS: tuple[str, ...] = tuple(NAMED)
MAX_LENGTH = 255

Labels = dict[str, dict[str, str]]


def labels(session: Session, lang: str) -> Labels:
    """Every label of one language: ``{kind: {name: text}}``."""
    result: Labels = {kind: {} for kind in KINDS}
    rows = session.execute(
        select(DisplayName.kind, DisplayName.name, DisplayName.text).where(DisplayName.lang == lang)
    ).all()
    for kind, name, text in rows:
        result.setdefault(kind, {})[name] = text
    return result


def show(value: object, mapping: Mapping[str, str]) -> object:
    """One name in the reader's language (anything else, such as a missing value, unchanged)."""
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list | tuple):
        return [mapping.get(v, v) if isinstance(v, str) else v for v in value]
    return value


def show_series(values: pd.Series, mapping: Mapping[str, str]) -> pd.Series:
    """A column of names in the reader's language; each distinct value is looked up once."""
    if not mapping or values.empty:
        return values
    if values.dtype == object and values.map(lambda v: isinstance(v, list | tuple)).any():
        return values.map(lambda v: show(v, mapping))
    known = values.isin(list(mapping))
    if not known.any():
        return values
    out = values.copy()
    out[known] = values[known].map(mapping)
    return out


def table(session: Session) -> pd.DataFrame:
    """Every name in use with its label in each language, for the editor on the Admin page."""
    stored = pd.DataFrame(
        session.execute(select(DisplayName.kind, DisplayName.name, DisplayName.lang, DisplayName.text)).all(),
        columns=["kind", "name", "lang", "text"],
    )
    frames = [stored[["kind", "name"]]]
    for kind, source in NAMED.items():
        if source is None:
            continue
        model, column = source
        names = session.scalars(select(getattr(model, column)).distinct()).all()
        frames.append(pd.DataFrame({"kind": kind, "name": [n for n in names if n]}))
    frame = pd.concat(frames, ignore_index=True).drop_duplicates(["kind", "name"])
    for lang in LANGUAGES:
        part = stored[stored["lang"] == lang][["kind", "name", "text"]].rename(columns={"text": lang})
        frame = frame.merge(part, on=["kind", "name"], how="left")
    return frame.fillna("").sort_values(["kind", "name"], kind="stable").reset_index(drop=True)


def save(session: Session, *, actor: Actor, rows: Iterable[Mapping[str, str]]) -> int:
    """Set labels from rows of ``kind``, ``name`` and one column per language; an empty cell removes a label.

    Returns how many labels changed. Validation happens before anything is written.
    """
    require(actor, "manage_channels")
    wanted: dict[tuple[str, str, str], str] = {}
    for row in rows:
        kind, name = str(row.get("kind", "")), str(row.get("name", ""))
        if kind not in NAMED:
            raise ValidationError(f"Unknown kind of name: {kind}.", key="names.kind_invalid", kind=kind)
        for lang in LANGUAGES:
            text = str(row.get(lang) or "").strip()
            if len(text) > MAX_LENGTH:
                raise ValidationError(f"A label is longer than {MAX_LENGTH} characters: {name}.",
                                      key="names.too_long", name=name, limit=MAX_LENGTH)
            wanted[(kind, name, lang)] = text
    current = {
        (r.kind, r.name, r.lang): r
        for r in session.scalars(select(DisplayName)).all()
    }
    changed = 0
    for key, text in wanted.items():
        row = current.get(key)
        if text and row is None:
            session.add(DisplayName(kind=key[0], name=key[1], lang=key[2], text=text))
        elif text and row is not None and row.text != text:
            row.text = text
        elif not text and row is not None:
            session.delete(row)
        else:
            continue
        changed += 1
    if changed:
        session.flush()
        audit.record(session, actor_id=actor.id or None, action="names.update", entity="display_name",
                     detail={"changed": changed})
    return changed


def seed(session: Session, kind: str, texts: Mapping[str, str], lang: str = "en") -> None:
    """Labels written by the demo data and by tests (no permission check, no audit: not a user action)."""
    if kind not in NAMED:
        raise ValueError(kind)
    session.execute(delete(DisplayName).where(DisplayName.kind == kind, DisplayName.lang == lang,
                                              DisplayName.name.in_(list(texts))))
    session.add_all(DisplayName(kind=kind, name=name, lang=lang, text=text) for name, text in texts.items())
    session.flush()


def rename(session: Session, kind: str, old: str, new: str) -> None:
    """Carry a thing's labels along when it is renamed."""
    if old == new:
        return
    for row in session.scalars(select(DisplayName).where(DisplayName.kind == kind, DisplayName.name == old)):
        row.name = new
