"""The funnel: which leads became MQLs, were accepted or sent back by sales, turned into opportunities and won.

Each step is one vectorized draw over all leads that reached the previous step, with rates inside the published
B2B ranges (lead→MQL ≈ 25 %, MQL→SAL ≈ 50 %, SAL→SQL ≈ 60 %, SQL→opportunity most, SQL→won ≈ 25 %); better
fit and demo requests convert more, events and content less. Time moves forward at every step and a step that
would land after ``now`` has not happened yet, so recent leads are still early in the funnel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seed import catalog
from seed.people import route
from seed.timeline import DAY, HOUR, MINUTE
from seed.world import World

MQL_RULE = "MQL 线"
STALL_RULE = "SAL 停滞回收"
RECYCLE_DAYS = {"cannot_reach": 30, "no_budget": 120, "wrong_person": 30, "not_now": 90}


class _Changes:
    """StageChange rows collected step by step."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, lead: np.ndarray, at: np.ndarray, from_stage: object, to_stage: str, *,
            user: np.ndarray | int | None = None, rule: str | None = None, reason: object = "") -> None:
        if not len(lead):
            return
        n = len(lead)
        self.parts.append(pd.DataFrame({
            "lead": lead,
            "at": np.asarray(at, dtype=np.int64),
            "from_stage": np.broadcast_to(np.asarray(from_stage, dtype=object), (n,)),
            "to_stage": to_stage,
            "by_user_id": pd.array(np.broadcast_to(np.asarray(user if user is not None else -1), (n,)),
                                   dtype="Int64"),
            "by_rule": rule,
            "reason": np.broadcast_to(np.asarray(reason, dtype=object), (n,)),
        }))

    def frame(self) -> pd.DataFrame:
        frame = pd.concat(self.parts, ignore_index=True)
        frame["by_user_id"] = frame["by_user_id"].where(frame["by_user_id"] >= 0, pd.NA)
        return frame


def _fit(leads: pd.DataFrame) -> np.ndarray:
    seniority = np.array([0.55, 1.0, 1.6])[leads["seniority"].fillna(0).astype(int).to_numpy()]
    industry = np.where(leads["industry"].isin(["制造业", "金融", "医疗"]).to_numpy(), 1.25, 1.0)
    size = pd.to_numeric(leads["company_size"], errors="coerce").to_numpy(dtype=np.float64)
    size_factor = np.where(np.isnan(size), 0.9, np.where(size >= 500, 1.3, np.where(size >= 100, 1.1, 0.8)))
    fan = np.where(leads["is_fan"].to_numpy() & ~leads["fan_registers"].to_numpy(), 0.15, 1.0)
    return seniority * industry * size_factor * fan


def _working(world: World, start: np.ndarray, hours: np.ndarray) -> np.ndarray:
    add = world.timeline.add_working_hours
    return np.array([add(int(s), float(h)) for s, h in zip(start, hours, strict=True)], dtype=np.int64)


def simulate(world: World) -> None:
    leads = world.leads
    assert leads is not None
    rng = world.rng
    now = world.now
    n = len(leads)
    idx = np.arange(n)
    created = leads["created"].to_numpy(dtype=np.int64)
    valid = (leads["status"] == "valid").to_numpy()
    demo_first = (leads["first_kind"] == "demo_request").to_numpy()
    fit = _fit(leads)
    score = fit * leads["convert"].to_numpy(dtype=np.float64)
    mean_score = score[valid].mean() if valid.any() else 1.0
    mean_fit = fit[valid].mean() if valid.any() else 1.0
    changes = _Changes()
    changes.add(idx, created, None, "new", rule="created", reason=("来源：" + leads["channel_kind"].map(
        dict(zip(world.channels["kind"], world.channels["name"], strict=True))).astype(str)).to_numpy())  # type: ignore[index]

    stage = np.full(n, "new", dtype=object)
    stage_at = created.copy()
    recycle_at = np.full(n, -1, dtype=np.int64)

    # -- new → MQL -----------------------------------------------------------------------------------------------
    p_mql = np.clip(0.29 * score / mean_score, 0, 0.92)
    delay = np.where(demo_first, rng.uniform(MINUTE, 30 * MINUTE, n),
                     HOUR + np.exp(rng.normal(np.log(10 * DAY), 1.0, n)))
    t_mql = (created + delay).astype(np.int64)
    mql = valid & (rng.random(n) < p_mql) & (t_mql <= now - 20 * MINUTE)

    # Marketing disqualifies some new leads by hand (students, job seekers, peers).
    student = leads["title"].eq("学生").to_numpy()
    t_dq = (created + rng.uniform(HOUR, 20 * DAY, n)).astype(np.int64)
    dq_new = valid & ~mql & (rng.random(n) < np.where(student, 0.6, 0.025)) & (t_dq <= now)
    reasons = np.array(catalog.DISQUALIFY_NEW_REASONS, dtype=object)[rng.integers(len(catalog.DISQUALIFY_NEW_REASONS), size=n)]
    reasons = np.where(student, catalog.DISQUALIFY_NEW_REASONS[0], reasons)
    changes.add(idx[dq_new], t_dq[dq_new], "new", "disqualified", user=catalog.MARKETER_ID, reason=reasons[dq_new])
    stage[dq_new], stage_at[dq_new] = "disqualified", t_dq[dq_new]

    # Some MQLs are waiting for sales right now: SLA due in the next hours, a few already overdue.
    pool = np.flatnonzero(valid & ~mql & ~dq_new & (created < now - 5 * DAY) & (fit > 0.3))
    soon = rng.choice(pool, size=min(len(pool), max(3, n // 600)), replace=False)
    pool = np.setdiff1d(pool, soon)
    overdue = rng.choice(pool, size=min(len(pool), max(2, n // 1500)), replace=False)
    t_mql[soon] = now - rng.integers(20 * MINUTE, 5 * HOUR, size=len(soon))
    t_mql[overdue] = now - rng.integers(30 * HOUR, 80 * HOUR, size=len(overdue))
    mql[soon] = mql[overdue] = True
    force_pending = np.zeros(n, dtype=bool)
    force_pending[soon] = force_pending[overdue] = True

    changes.add(idx[mql], t_mql[mql], "new", "mql", rule=MQL_RULE, reason="评分达到 MQL 线（等级 A/B 且互动分 ≥ 60）")
    stage[mql], stage_at[mql] = "mql", t_mql[mql]

    accounts = world.accounts
    assert accounts is not None
    account_owner = leads["account_id"].map(dict(zip(accounts["id"], accounts["owner_id"], strict=True)))
    account_owner = account_owner.fillna(0).astype(np.int64).to_numpy()
    territory_rep, territory_rule = route(
        leads["province"].to_numpy(dtype=object), leads["industry"].to_numpy(dtype=object),
        leads["product_interest"].to_numpy(dtype=object),
    )
    rep_for = np.where(account_owner > 0, account_owner, territory_rep)
    rule_for = np.where(account_owner > 0, "account: 重点客户归属负责人", territory_rule)

    assignments: list[pd.DataFrame] = []

    def assign(members: np.ndarray, at: np.ndarray, *, pending_forced: np.ndarray, p_accept: np.ndarray,
               reject_pool: tuple[str, ...], cycle: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Hand ``members`` to reps at ``at``; returns (decided_at, accepted, rejected, reject reason codes)."""
        k = len(members)
        assigned = np.minimum(at + rng.integers(MINUTE, 15 * MINUTE, size=k), now - MINUTE)
        sla_due = _working(world, assigned, np.full(k, 8.0))
        response = np.exp(rng.normal(np.log(3.0), 0.9, k)) + 0.05
        decided = np.maximum(_working(world, assigned, response), assigned + MINUTE)
        pending = (decided > now) | pending_forced
        accepted = ~pending & (rng.random(k) < p_accept)
        rejected = ~pending & ~accepted
        shares = np.array([catalog.REJECT_REASONS[c][0] for c in reject_pool])
        codes = np.array(reject_pool, dtype=object)[world.weighted(shares, k)]
        codes = np.where(leads["is_dup"].to_numpy()[members] & (rng.random(k) < 0.6) & ("duplicate" in reject_pool),
                         "duplicate", codes)
        notes = np.array([catalog.REJECT_REASONS[c][2][int(rng.integers(2))] for c in codes], dtype=object)
        breached = np.where(pending, now, decided) > sla_due
        reminded = np.where(breached | (pending & (sla_due - now < 2 * HOUR)), sla_due - 2 * HOUR, -1)
        reminded = np.where((reminded > 0) & (reminded <= now) & (reminded > assigned), reminded, -1)
        escalated = np.where(breached & (sla_due + HOUR <= np.where(pending, now, decided)), sla_due + HOUR, -1)
        assignments.append(pd.DataFrame({
            "lead": members, "rep_id": rep_for[members], "routed_by": rule_for[members],
            "status": np.where(pending, "pending", np.where(accepted, "accepted", "rejected")),
            "reason": np.where(rejected, codes, None), "note": np.where(rejected, notes, ""),
            "assigned_at": assigned, "sla_due_at": sla_due, "reminded_at": reminded, "escalated_at": escalated,
            "breached": breached, "decided_at": np.where(pending, -1, decided),
            "come_back_at": np.where(rejected & (codes == "not_now"), decided + 90 * DAY, -1),
            "crm_pushed_at": np.where(accepted, decided + rng.integers(MINUTE, 10 * MINUTE, size=k), -1),
            "cycle": cycle,
        }))
        return decided, accepted, rejected, codes

    def reject(members: np.ndarray, decided: np.ndarray, codes: np.ndarray, rep: np.ndarray) -> None:
        to = np.array([catalog.REJECT_REASONS[c][1] for c in codes], dtype=object)
        text = np.array([f"销售退回：{catalog.REJECT_REASON_ZH[c]}" for c in codes], dtype=object)
        for target in ("recycled", "disqualified"):
            pick = to == target
            changes.add(members[pick], decided[pick], "mql", target, user=rep[pick], reason=text[pick])
        stage[members], stage_at[members] = to, decided
        recycled = to == "recycled"
        recycle_at[members[recycled]] = decided[recycled] + np.array(
            [RECYCLE_DAYS[c] * DAY for c in codes[recycled]], dtype=np.int64)

    # -- MQL → SAL (sales accepts) or back to marketing ------------------------------------------------------------
    members = idx[mql]
    p_accept = np.clip(0.45 * np.sqrt(fit[members] / mean_fit), 0.2, 0.85)
    decided, accepted, rejected, codes = assign(
        members, t_mql[members], pending_forced=force_pending[members], p_accept=p_accept,
        reject_pool=tuple(catalog.REJECT_REASONS), cycle=1,
    )
    frame_rep = rep_for  # 0 = round robin: the rep is filled in below, once all assignments exist
    sal = members[accepted]
    t_sal = np.full(n, -1, dtype=np.int64)
    t_sal[sal] = decided[accepted]
    changes.add(sal, t_sal[sal], "mql", "sal", user=frame_rep[sal], reason="销售接受")
    stage[sal], stage_at[sal] = "sal", t_sal[sal]
    reject(members[rejected], decided[rejected], codes[rejected], frame_rep[members[rejected]])

    # -- SAL → SQL, or stalled --------------------------------------------------------------------------------------
    p_sql = np.clip(0.62 * np.where(demo_first[sal], 1.2, 1.0) * np.sqrt(fit[sal] / mean_fit), 0.2, 0.92)
    t_sql_all = t_sal[sal] + HOUR + np.exp(rng.normal(np.log(8 * DAY), 0.8, len(sal))).astype(np.int64)
    to_sql = (rng.random(len(sal)) < p_sql) & (t_sql_all <= now)
    sql = sal[to_sql]
    t_sql = np.full(n, -1, dtype=np.int64)
    t_sql[sql] = t_sql_all[to_sql]
    changes.add(sql, t_sql[sql], "sal", "sql", user=frame_rep[sql], reason="确认需求、预算与时间表")
    stage[sql], stage_at[sql] = "sql", t_sql[sql]
    stalled = sal[~to_sql & (t_sal[sal] + 45 * DAY <= now) & (rng.random(len(sal)) < 0.55)]
    t_stall = np.minimum(t_sal[stalled] + rng.integers(35 * DAY, 60 * DAY, size=len(stalled)), now - HOUR)
    back = rng.random(len(stalled)) < 0.75
    changes.add(stalled[back], t_stall[back], "sal", "recycled", rule=STALL_RULE, reason="45 天无进展，回收培育")
    changes.add(stalled[~back], t_stall[~back], "sal", "disqualified", user=frame_rep[stalled[~back]],
                reason="确认无采购计划")
    stage[stalled] = np.where(back, "recycled", "disqualified")
    stage_at[stalled] = t_stall
    recycle_at[stalled[back]] = t_stall[back] + 60 * DAY

    # -- SQL → opportunity → won / lost -------------------------------------------------------------------------------
    t_opp_all = t_sql[sql] + rng.integers(DAY, 10 * DAY, size=len(sql))
    to_opp = (rng.random(len(sql)) < 0.88) & (t_opp_all <= now)
    opp = sql[to_opp]
    t_opp = np.full(n, -1, dtype=np.int64)
    t_opp[opp] = t_opp_all[to_opp]
    changes.add(opp, t_opp[opp], "sql", "opportunity", user=frame_rep[opp], reason="创建商机")
    stage[opp], stage_at[opp] = "opportunity", t_opp[opp]
    sql_dead = sql[~to_opp & (t_sql[sql] + 40 * DAY <= now) & (rng.random(len(sql)) < 0.5)]
    t_dead = t_sql[sql_dead] + rng.integers(20 * DAY, 40 * DAY, size=len(sql_dead))
    changes.add(sql_dead, t_dead, "sql", "disqualified", user=frame_rep[sql_dead], reason="预算取消，项目终止")
    stage[sql_dead], stage_at[sql_dead] = "disqualified", t_dead

    close = t_opp[opp] + HOUR + np.exp(rng.normal(np.log(40 * DAY), 0.6, len(opp))).astype(np.int64)
    closed = close <= now
    won = closed & (rng.random(len(opp)) < np.clip(0.32 * np.sqrt(fit[opp] / mean_fit), 0.15, 0.7))
    lost = closed & ~won
    lost_reason = np.array(catalog.LOST_REASONS, dtype=object)[rng.integers(len(catalog.LOST_REASONS), size=len(opp))]
    changes.add(opp[won], close[won], "opportunity", "won", user=frame_rep[opp[won]], reason="赢单：合同已签署")
    changes.add(opp[lost], close[lost], "opportunity", "lost", user=frame_rep[opp[lost]], reason=lost_reason[lost])
    stage[opp[won]], stage_at[opp[won]] = "won", close[won]
    stage[opp[lost]], stage_at[opp[lost]] = "lost", close[lost]
    size = pd.to_numeric(leads["company_size"], errors="coerce").fillna(300).to_numpy(dtype=np.float64)[opp]
    amount = np.clip(np.exp(rng.normal(np.log(260_000 * (size / 500) ** 0.3), 0.7)), 50_000, 2_000_000)
    world.opportunities = {
        "lead": opp, "created": t_opp[opp], "closed": np.where(closed, close, -1),
        "stage": np.where(won, "won", np.where(lost, "lost", "open")), "amount": np.round(amount / 1000) * 1000,
        "lost_reason": np.where(lost, lost_reason, None),
    }

    # -- recycled leads that warmed up again: a second MQL ---------------------------------------------------------
    again = np.flatnonzero((stage == "recycled") & (recycle_at > 0) & (recycle_at <= now - DAY))
    again = again[rng.random(len(again)) < 0.35]
    room = np.maximum(now - HOUR - recycle_at[again], MINUTE)
    t_mql2 = recycle_at[again] + rng.integers(0, np.minimum(room, 20 * DAY) + 1)
    changes.add(again, t_mql2, "recycled", "mql", rule=MQL_RULE, reason="重新活跃，再次达到 MQL 线")
    stage[again], stage_at[again] = "mql", t_mql2
    decided2, accepted2, rejected2, codes2 = assign(
        again, t_mql2, pending_forced=np.zeros(len(again), dtype=bool), p_accept=np.full(len(again), 0.5),
        reject_pool=("no_budget", "not_now", "cannot_reach"), cycle=2,
    )
    sal2 = again[accepted2]
    changes.add(sal2, decided2[accepted2], "mql", "sal", user=frame_rep[sal2], reason="销售接受（再次）")
    stage[sal2], stage_at[sal2] = "sal", decided2[accepted2]
    reject(again[rejected2], decided2[rejected2], codes2[rejected2], frame_rep[again[rejected2]])
    t_mql_second = np.full(n, -1, dtype=np.int64)
    t_mql_second[again] = t_mql2

    # -- round robin, owners, the StageChange table -----------------------------------------------------------------
    assignment = pd.concat(assignments, ignore_index=True).sort_values(["assigned_at", "lead"], kind="stable")
    assignment = assignment.reset_index(drop=True)
    robin = assignment["rep_id"].to_numpy() == 0
    lead_rep: dict[int, int] = {}
    counter = 0
    reps = []
    for lead, rep in zip(assignment["lead"].to_numpy(), assignment["rep_id"].to_numpy(), strict=True):
        if rep == 0:
            rep = lead_rep.get(int(lead)) or catalog.REP_IDS[counter % len(catalog.REP_IDS)]
            counter += 1
        lead_rep[int(lead)] = int(rep)
        reps.append(int(rep))
    assignment["rep_id"] = reps
    assignment.loc[robin, "routed_by"] = "round_robin: 其他：轮询"
    final_rep = np.array([lead_rep.get(i, 0) for i in range(n)], dtype=np.int64)
    # The rep owns the lead from the hand-off (pending or accepted) to the end; back in marketing it has none.
    owner = np.where(np.isin(stage, ["mql", "sal", "sql", "opportunity", "won", "lost"]), final_rep, 0)
    world.assignments = assignment

    changes_frame = changes.frame()
    user = changes_frame["by_user_id"].to_numpy(dtype=object)
    rep_needed = np.array([u is not pd.NA and u == 0 for u in user])
    changes_frame.loc[rep_needed, "by_user_id"] = final_rep[changes_frame.loc[rep_needed, "lead"].to_numpy()]
    changes_frame = changes_frame.sort_values(["lead", "at"], kind="stable").reset_index(drop=True)
    world.stage_changes = changes_frame

    leads["stage"] = stage
    leads["stage_changed_at"] = stage_at
    leads["owner_id"] = pd.array(np.where(owner > 0, owner, -1), dtype="Int64")
    leads.loc[leads["owner_id"] < 0, "owner_id"] = pd.NA
    leads["recycle_at"] = np.where(stage == "recycled", recycle_at, -1)
    leads["is_customer"] = stage == "won"
    leads["t_mql"] = np.where(mql, t_mql, -1)
    leads["t_mql2"] = t_mql_second
    leads["t_sal"] = t_sal
    leads["t_opp"] = t_opp
    leads["fit"] = fit
