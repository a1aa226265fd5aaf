"""Admin tabs: one module per tab, each with ``PERMISSION`` and ``render(actor)``; pages/admin.py lists them."""

from __future__ import annotations

from typing import Any

from core.auth import Actor
from ui.common import run_action, tr


def act(actor: Actor, func: Any, success_key: str, rerun: bool = True, **kwargs: Any) -> None:
    """Run one core command as ``actor`` in its own transaction and say what happened."""
    run_action(func, actor=actor, success=tr(success_key), rerun=rerun, **kwargs)
