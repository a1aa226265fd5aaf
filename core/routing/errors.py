"""Errors of the handoff, each with a message a rep or manager understands."""

from __future__ import annotations

from core.errors import ConcurrentUpdate, PermissionDenied, ValidationError


class NotYourLead(PermissionDenied):
    """The assignment exists but is in someone else's inbox (another rep's, or outside a manager's team)."""

    key = "routing.not_yours"


class AlreadyDecided(ConcurrentUpdate):
    """Someone acted on this MQL first: the message says who did what, and when."""

    key = "routing.already_decided"


class LeadChanged(ConcurrentUpdate):
    """The lead changed since the page showed it (merged, edited, moved): refresh and look again."""

    key = "routing.lead_changed"


class RoutingError(ValidationError):
    key = "routing.invalid"
