"""Tracking links and QR codes per campaign and per employee, so offline posters and staff shares are attributed.

A link is the campaign's landing page with ``ll=<code>`` added; the import reads ``ll`` (or ``code``/``ref``/``tc``)
from a file's landing-URL column, or a referral-code column, and links the lead to the campaign and employee.
"""

from __future__ import annotations

import io
import secrets
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd
import qrcode
from sqlalchemy import func, select
from sqlmodel import Session

from core import audit
from core.auth import Actor, require
from core.errors import NotFound, ValidationError
from db.models import Campaign, Lead, Role, TrackingLink, User

TRACKING_PARAMETER = "ll"
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: codes are read off posters and typed
LINK_COLUMNS = ["id", "code", "campaign", "campaign_id", "employee", "employee_id", "label", "url", "leads"]


def tracked_url(target_url: str, code: str) -> str:
    """``target_url`` with the tracking parameter set to ``code`` (other query parameters kept)."""
    parts = urlsplit(target_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != TRACKING_PARAMETER]
    query.append((TRACKING_PARAMETER, code))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), parts.fragment))


def _new_code(session: Session) -> str:
    taken = set(session.scalars(select(TrackingLink.code)))
    while True:
        code = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        if code not in taken:
            return code


def _check_url(target_url: str) -> str:
    url = (target_url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("Give a target URL starting with http:// or https://.", key="admin.tracking.url_required")
    return url


def create_tracking_link(*, session: Session, actor: Actor, campaign_id: int, target_url: str,
                         employee_id: int | None = None, label: str = "", now: datetime) -> TrackingLink:
    require(actor, "manage_channels")
    url = _check_url(target_url)
    if session.get(Campaign, campaign_id) is None:
        raise NotFound(f"Not found: campaign {campaign_id}.", what=str(campaign_id))
    if employee_id is not None and session.get(User, employee_id) is None:
        raise NotFound(f"Not found: user {employee_id}.", what=str(employee_id))
    link = TrackingLink(code=_new_code(session), campaign_id=campaign_id, employee_id=employee_id, target_url=url,
                        label=label.strip(), created_at=now)
    session.add(link)
    session.flush()
    audit.record(session, actor_id=actor.id or None, action="tracking.create", entity="trackinglink",
                 entity_id=link.id, detail={"code": link.code, "campaign_id": campaign_id,
                                            "employee_id": employee_id}, now=now)
    return link


def create_employee_links(*, session: Session, actor: Actor, campaign_id: int, target_url: str,
                          now: datetime) -> int:
    """A link for every active sales rep who has none for this campaign yet; returns how many were made."""
    require(actor, "manage_channels")
    url = _check_url(target_url)
    if session.get(Campaign, campaign_id) is None:
        raise NotFound(f"Not found: campaign {campaign_id}.", what=str(campaign_id))
    having = set(session.scalars(select(TrackingLink.employee_id).where(TrackingLink.campaign_id == campaign_id,
                                                                         TrackingLink.employee_id.is_not(None))))
    reps = session.execute(select(User.id, User.display_name, User.username)
                           .where(User.role == Role.SALES, User.active.is_(True)).order_by(User.id)).all()
    made = 0
    for rep in reps:
        if rep.id in having:
            continue
        create_tracking_link(session=session, actor=actor, campaign_id=campaign_id, target_url=url,
                             employee_id=rep.id, label=rep.display_name or rep.username, now=now)
        made += 1
    return made


def list_tracking_links(*, session: Session, campaign_id: int | None = None) -> pd.DataFrame:
    """Links with their campaign, employee, full URL and how many leads each brought."""
    leads = (select(Lead.tracking_code.label("code"), func.count().label("leads"))
             .where(Lead.tracking_code.is_not(None)).group_by(Lead.tracking_code).subquery())
    statement = (
        select(TrackingLink.id, TrackingLink.code, Campaign.name.label("campaign"), TrackingLink.campaign_id,
               User.display_name.label("employee"), TrackingLink.employee_id, TrackingLink.label,
               TrackingLink.target_url, func.coalesce(leads.c.leads, 0).label("leads"))
        .join(Campaign, Campaign.id == TrackingLink.campaign_id)
        .join(User, User.id == TrackingLink.employee_id, isouter=True)
        .join(leads, leads.c.code == TrackingLink.code, isouter=True)
        .order_by(TrackingLink.id)
    )
    if campaign_id is not None:
        statement = statement.where(TrackingLink.campaign_id == campaign_id)
    rows = [r._asdict() for r in session.execute(statement)]
    for row in rows:
        row["url"] = tracked_url(row.pop("target_url"), row["code"])
    return pd.DataFrame(rows, columns=LINK_COLUMNS)


def list_employees(*, session: Session) -> list[tuple[int, str]]:
    """Active users a link can be made for: (id, name)."""
    rows = session.execute(select(User.id, User.display_name, User.username).where(User.active.is_(True))
                           .order_by(User.id)).all()
    return [(int(r.id), r.display_name or r.username) for r in rows]


def qr_png(text: str, *, box_size: int = 10) -> bytes:
    """A QR code of ``text`` as PNG bytes (error correction M: survives a crease in a printed poster)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box_size, border=4)
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image(fill_color="black", back_color="white").save(buffer, format="PNG")
    return buffer.getvalue()
