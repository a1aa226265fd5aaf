"""Workflows with enrollments that are where they would be today: the WeChat recall flow moving silent fans to the
sleeping groups, the new-lead email nurture branching on opens, the webinar series. Every executed step has its
StepRun, every send its Message (and, for emails, the email touchpoints), each with an idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seed import catalog
from seed.journeys import K, touches
from seed.timeline import DAY, HOUR, MINUTE
from seed.world import World

# campaign id -1 marks touches that belong to no campaign and must not be moved onto sessions
NO_CAMPAIGN = -1
ACTIVATED_DAYS_AGO = {0: 150, 1: 100, 2: 60}


@dataclass
class _Run:
    """The steps one enrollment has executed so far."""

    workflow: int
    lead: int
    entered: int
    steps: list[tuple[str, int, str, dict[str, Any]]] = field(default_factory=list)
    status: str = "active"
    current: str | None = None
    next_run: int | None = None
    finished: int | None = None

    def step(self, step_id: str, at: int, status: str = "done", **result: Any) -> None:
        self.steps.append((step_id, at, status, result))

    def wait(self, step_id: str, at: int, days: int, now: int) -> bool:
        """Record the wait; True when it is over by ``now``."""
        self.step(step_id, at, "waiting", until=at + days * DAY)
        if at + days * DAY > now:
            self.current, self.next_run = step_id, at + days * DAY
            return False
        return True

    def end(self, at: int) -> None:
        self.step("end", at)
        self.status, self.current, self.finished = "completed", "end", at


def build_workflows(world: World) -> None:
    leads = world.leads
    assert leads is not None
    tl = world.timeline
    created_at = [tl.now - (ACTIVATED_DAYS_AGO.get(i, 20) + 7) * DAY for i in range(len(catalog.WORKFLOWS))]
    activated = [tl.now - ACTIVATED_DAYS_AGO.get(i, 0) * DAY for i in range(len(catalog.WORKFLOWS))]
    world.add("workflow", {
        "id": list(range(1, len(catalog.WORKFLOWS) + 1)),
        "name": [w["name"] for w in catalog.WORKFLOWS],
        "description": [w["description"] for w in catalog.WORKFLOWS],
        "trigger": [w["trigger"] for w in catalog.WORKFLOWS],
        "definition": [w["definition"] for w in catalog.WORKFLOWS],
        "status": [w["status"] for w in catalog.WORKFLOWS],
        "reentry": "never",
        "version": 1,
        "is_template": False,
        "created_by_id": catalog.MARKETER_ID,
        "created_at": created_at,
        "updated_at": [a if w["status"] == "active" else c for a, c, w in zip(activated, created_at, catalog.WORKFLOWS,
                                                                             strict=True)],
    })
    active = [i for i, w in enumerate(catalog.WORKFLOWS) if w["status"] == "active"]
    world.add("workflowversion", {
        "id": list(range(1, len(active) + 1)),
        "workflow_id": [i + 1 for i in active],
        "version": 1,
        "trigger": [catalog.WORKFLOWS[i]["trigger"] for i in active],
        "definition": [catalog.WORKFLOWS[i]["definition"] for i in active],
        "author_id": catalog.MARKETER_ID,
        "note": "首次发布",
        "created_at": [activated[i] for i in active],
    })
    runs = _wechat_recall(world, activated[0]) + _email_nurture(world, activated[1]) + _webinar_series(world, activated[2])
    _write_runs(world, runs)


def _wechat_recall(world: World, since: int) -> list[_Run]:
    leads = world.leads
    assert leads is not None
    rng = world.rng
    now = world.now
    wechat_campaign = int(world.campaigns.loc[world.campaigns["code"] == "WX-FOLLOW", "id"].iat[0])  # type: ignore[union-attr]
    fans = np.flatnonzero(leads["is_fan"].to_numpy())
    created = leads["created"].to_numpy(dtype=np.int64)
    registers = leads["fan_registers"].to_numpy()
    runs: list[_Run] = []
    registered_lead, registered_at = [], []
    membership: dict[int, tuple[str, int]] = {}
    for lead in fans.tolist():
        enrolled = created[lead] >= since and created[lead] <= now - 10 * MINUTE
        t0 = int(created[lead] + rng.integers(MINUTE, 10 * MINUTE)) if enrolled else int(created[lead])
        reg: int | None = None
        if registers[lead]:
            if not enrolled:
                reg = t0 + int(rng.integers(HOUR, 20 * DAY))
            elif rng.random() < 0.55:
                reg = t0 + int(rng.integers(HOUR, 3 * DAY - HOUR))
            else:
                reg = t0 + 23 * DAY + int(rng.integers(HOUR, 3 * DAY - HOUR))
            if reg > now - MINUTE:
                reg = t0 + max(MINUTE, (now - t0) // 2)
            registered_lead.append(lead)
            registered_at.append(reg)
        if not enrolled:
            if not registers[lead]:
                membership[lead] = ("未完善信息粉丝", t0)
            continue
        run = _Run(workflow=1, lead=lead, entered=t0)
        runs.append(run)
        run.step("add_group", t0, group="未完善信息粉丝")
        membership[lead] = ("未完善信息粉丝", t0)
        run.step("send_invite", t0)
        if not run.wait("wait_first", t0, 3, now):
            continue
        check = t0 + 3 * DAY
        for branch, wait_next in (("check_first", "wait_20"), ("check_second", None)):
            yes = reg is not None and reg <= check
            run.step(branch, check, "branched", branch="yes" if yes else "no")
            if yes:
                run.step("leave_group", check, group="未完善信息粉丝")
                membership.pop(lead, None)
                run.step("send_gift", check)
                run.end(check)
                break
            if wait_next is None:
                run.step("to_sleeping", check, to="沉睡粉丝")
                membership[lead] = ("沉睡粉丝", check)
                if run.wait("wait_30", check, 30, now):
                    run.step("to_deep_sleep", check + 30 * DAY, to="深度沉睡粉丝")
                    membership[lead] = ("深度沉睡粉丝", check + 30 * DAY)
                    run.end(check + 30 * DAY)
                break
            if not run.wait("wait_20", check, 20, now):
                break
            run.step("send_reminder", check + 20 * DAY)
            if not run.wait("wait_second", check + 20 * DAY, 3, now):
                break
            check = check + 23 * DAY
    world.extra_touchpoints.append(touches(np.array(registered_lead, dtype=np.int64),
                                           np.array(registered_at, dtype=np.int64), K["registered"],
                                           channel=int(world.channels.loc[world.channels["kind"] == "wechat", "id"].iat[0]),  # type: ignore[union-attr]
                                           campaign=wechat_campaign))
    world.fan_groups = membership
    return runs


def _email_nurture(world: World, since: int) -> list[_Run]:
    leads = world.leads
    assert leads is not None
    rng = world.rng
    now = world.now
    created = leads["created"].to_numpy(dtype=np.int64)
    eligible = np.flatnonzero(
        (leads["status"] == "valid").to_numpy() & leads["email"].notna().to_numpy()
        & ~leads["unsubscribed"].to_numpy() & (created >= since) & (created <= now - 10 * MINUTE)
    )
    chosen = eligible[rng.random(len(eligible)) < 0.1]
    runs = []
    for lead in chosen.tolist():
        t0 = int(created[lead] + rng.integers(2 * MINUTE, 10 * MINUTE))
        run = _Run(workflow=2, lead=lead, entered=t0)
        runs.append(run)
        run.step("send_a", t0)
        opened = t0 + int(min(rng.exponential(8 * HOUR), 3 * DAY - HOUR)) if rng.random() < 0.45 else None
        if opened is not None and opened <= now:
            run.step("_open", opened)  # not a step: the touchpoint the branch looks at
        if not run.wait("wait_3", t0, 3, now):
            continue
        at = t0 + 3 * DAY
        yes = opened is not None and opened <= at
        run.step("check_open", at, "branched", branch="yes" if yes else "no")
        run.step("send_b" if yes else "send_c", at)
        run.end(at)
    return runs


def _webinar_series(world: World, since: int) -> list[_Run]:
    leads = world.leads
    assert leads is not None
    rng = world.rng
    now = world.now
    created = leads["created"].to_numpy(dtype=np.int64)
    start = np.maximum(created + HOUR, since)
    eligible = np.flatnonzero((leads["status"] == "valid").to_numpy() & leads["email"].notna().to_numpy()
                              & ~leads["unsubscribed"].to_numpy() & (start < now - HOUR))
    chosen = eligible[rng.random(len(eligible)) < 0.03]
    series = int(world.campaigns.loc[world.campaigns["code"] == "LIVE-CLASS", "id"].iat[0])  # type: ignore[union-attr]
    runs, reg_lead, reg_at = [], [], []
    for lead in chosen.tolist():
        t0 = int(start[lead] + rng.integers(0, max(MINUTE, now - HOUR - start[lead])))
        reg_lead.append(lead)
        reg_at.append(t0 - MINUTE)
        run = _Run(workflow=3, lead=lead, entered=t0)
        runs.append(run)
        run.step("invite_1", t0)
        if not run.wait("wait_7a", t0, 7, now):
            continue
        run.step("invite_2", t0 + 7 * DAY)
        if not run.wait("wait_7b", t0 + 7 * DAY, 7, now):
            continue
        run.step("replay", t0 + 14 * DAY)
        run.end(t0 + 14 * DAY)
    world.extra_touchpoints.append(touches(np.array(reg_lead, dtype=np.int64), np.array(reg_at, dtype=np.int64),
                                           K["webinar_registered"], campaign=series))
    return runs


def _write_runs(world: World, runs: list[_Run]) -> None:
    leads, channels = world.leads, world.channels
    assert leads is not None and channels is not None
    email_channel = int(channels.loc[channels["kind"] == "email", "id"].iat[0])
    runs.sort(key=lambda r: (r.entered, r.workflow, r.lead))
    definitions = {i + 1: w["definition"]["steps"] for i, w in enumerate(catalog.WORKFLOWS)}
    enrollment: dict[str, list[Any]] = {k: [] for k in (
        "id", "workflow_id", "lead_id", "current_step", "status", "next_run_at", "entered_at", "finished_at")}
    steprun: dict[str, list[Any]] = {k: [] for k in ("enrollment_id", "step_id", "step_type", "status",
                                                      "idempotency_key", "result", "at")}
    message: dict[str, list[Any]] = {k: [] for k in (
        "channel", "lead_id", "enrollment_id", "to_address", "subject", "body", "payload", "status",
        "idempotency_key", "attempts", "provider_message_id", "created_at", "sent_at")}
    mail_lead, mail_t, mail_kind = [], [], []
    email = leads["email"].to_numpy(dtype=object)
    wechat = leads["wechat_id"].to_numpy(dtype=object)
    for enrollment_id, run in enumerate(runs, start=1):
        steps = definitions[run.workflow]
        enrollment["id"].append(enrollment_id)
        enrollment["workflow_id"].append(run.workflow)
        enrollment["lead_id"].append(run.lead + 1)
        enrollment["current_step"].append(run.current)
        enrollment["status"].append(run.status)
        enrollment["next_run_at"].append(run.next_run)
        enrollment["entered_at"].append(run.entered)
        enrollment["finished_at"].append(run.finished)
        for step_id, at, status, result in run.steps:
            if step_id == "_open":
                mail_lead.append(run.lead)
                mail_t.append(at)
                mail_kind.append(K["email_open"])
                continue
            spec = steps[step_id]
            key = f"enrollment:{enrollment_id}:{step_id}"
            steprun["enrollment_id"].append(enrollment_id)
            steprun["step_id"].append(step_id)
            steprun["step_type"].append(spec["type"])
            steprun["status"].append(status)
            steprun["idempotency_key"].append(key)
            steprun["result"].append({k: (int(v) if isinstance(v, (int, np.integer)) else v) for k, v in result.items()})
            steprun["at"].append(at)
            if spec["type"] in ("send_email", "send_wechat"):
                is_mail = spec["type"] == "send_email"
                message["channel"].append("email" if is_mail else "wechat")
                message["lead_id"].append(run.lead + 1)
                message["enrollment_id"].append(enrollment_id)
                message["to_address"].append(email[run.lead] if is_mail else wechat[run.lead])
                message["subject"].append(spec.get("subject", ""))
                message["body"].append(spec.get("text", f"[template: {spec.get('template', '')}]"))
                message["payload"].append({"workflow_id": run.workflow, "step": step_id})
                message["status"].append("sent")
                message["idempotency_key"].append(f"{key}:message")
                message["attempts"].append(1)
                message["provider_message_id"].append(f"{'smtp' if is_mail else 'wx'}-{enrollment_id}-{step_id}")
                message["created_at"].append(at)
                message["sent_at"].append(at + 2)
                if is_mail:
                    mail_lead.append(run.lead)
                    mail_t.append(at + 2)
                    mail_kind.append(K["email_sent"])
    world.add("enrollment", {**enrollment, "workflow_version": 1, "attempts": 0})
    world.add("steprun", {"id": list(range(1, len(steprun["at"]) + 1)), **steprun})
    world.add("message", {"id": list(range(1, len(message["sent_at"]) + 1)), **message})
    world.extra_touchpoints.append(touches(np.array(mail_lead, dtype=np.int64), np.array(mail_t, dtype=np.int64),
                                           np.array(mail_kind, dtype=np.int64), channel=email_channel,
                                           campaign=NO_CAMPAIGN))
