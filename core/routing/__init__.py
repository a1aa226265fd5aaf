"""MQL routing and the sales inbox: who gets which MQL, accept / reject / reassign, the SLA clock and alerts.

- ``engine``: the ordered routing rules and round robin (``route_leads``).
- ``sales_inbox``: the rep's and the manager's inbox, accept / reject / reassign with optimistic locking.
- ``sla``: working-hour SLA timers, reminders and escalations (``check_sla`` for the scheduler).
- ``alerts``: tell reps when their leads do something that matters (``alert_reps``).
- ``crm``: the CRM webhook and the export of accepted leads.
- ``admin``: the rules, rep capacity and settings a manager edits.
"""

from __future__ import annotations

from core.routing.sales_inbox import (
    REJECT_REASONS,
    accept,
    assign_lead,
    inbox,
    inbox_count,
    lead_history,
    mark_read,
    my_notifications,
    reassign,
    reject,
    rejections_by_channel,
    sla_summary,
    team_reps,
    waiting_mqls,
)

__all__ = ["REJECT_REASONS", "accept", "assign_lead", "inbox", "inbox_count", "lead_history", "mark_read",
           "my_notifications", "reassign", "reject", "rejections_by_channel", "sla_summary", "team_reps",
           "waiting_mqls"]
