"""Typed errors that carry a message a marketer understands.

Core raises these; pages catch ``LeadLoopError`` and show ``str(error)`` with ``st.error``. Each error
keeps an i18n key and its parameters so a page can render it in the user's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Term:
    """A parameter that is itself translated, e.g. ``Term("stage", "mql")`` → "MQL（市场认可）" in Chinese."""

    prefix: str
    value: str

    def __str__(self) -> str:
        return str(self.value)


class LeadLoopError(Exception):
    """Base class of every error meant to be shown to a user."""

    key: str = "error.generic"

    def __init__(self, message: str | None = None, *, key: str | None = None, **params: Any) -> None:
        self.key = key or self.key
        self.params = params
        self._message = message
        super().__init__(message or self.key)

    def localized(self, lang: str) -> str:
        """The message in ``lang``; falls back to the English text given at raise time."""
        from core.i18n import has_key, t

        if has_key(self.key):
            params = {
                name: t(f"{value.prefix}.{value.value}", lang) if isinstance(value, Term) else value
                for name, value in self.params.items()
            }
            return t(self.key, lang, **params)
        return self._message or self.key

    def __str__(self) -> str:
        return self.localized("en") if self._message is None else self._message


class DatabaseUnavailable(LeadLoopError):
    key = "error.database_unavailable"


class DatabaseBusy(LeadLoopError):
    """SQLite's single writer is taken (a large import, a full rescore) for longer than a person waits."""

    key = "error.database_busy"


class PermissionDenied(LeadLoopError):
    key = "error.permission_denied"


class AuthenticationFailed(LeadLoopError):
    key = "error.login_failed"


class NotFound(LeadLoopError):
    key = "error.not_found"


class ValidationError(LeadLoopError):
    key = "error.validation"


class ConcurrentUpdate(LeadLoopError):
    """Someone else changed the record first (optimistic locking on ``version``)."""

    key = "error.concurrent_update"


class FileFormatError(LeadLoopError):
    key = "error.file_format"


class MergeConflict(LeadLoopError):
    key = "error.merge_conflict"


class RuleError(LeadLoopError):
    key = "error.rule"
