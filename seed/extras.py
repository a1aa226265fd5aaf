"""Everything around the leads: tags and groups, rules, settings and routing rules, past imports, the dedup
review queue, a few job runs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from seed import catalog
from seed.journeys import K
from seed.timeline import DAY, HOUR, MINUTE
from seed.world import World


# ---------------------------------------------------------------------------------------------------------------
# Rules, settings, routing
# ---------------------------------------------------------------------------------------------------------------
def _rule_ast(kind: str, text: str) -> dict[str, Any]:
    from core.rules import context_of, parse

    return parse(text, context=context_of(kind)) if text.strip() else {}


def build_rules(world: World) -> None:
    tl = world.timeline
    world.tag_ids = {name: i for i, (name, _, _) in enumerate(catalog.TAGS, start=1)}
    world.add("tag", {
        "id": list(world.tag_ids.values()),
        "name": [t[0] for t in catalog.TAGS],
        "color": [t[1] for t in catalog.TAGS],
        "description": [t[2] for t in catalog.TAGS],
    })
    created = tl.start - 10 * DAY
    ids = list(range(1, len(catalog.RULES) + 1))
    world.rule_ids = {name: i for i, (_, name, _, _, _) in zip(ids, catalog.RULES, strict=True)}
    columns = {
        "id": ids,
        "name": [r[1] for r in catalog.RULES],
        "kind": [r[0] for r in catalog.RULES],
        "text": [r[2] for r in catalog.RULES],
        # Parsed for real, as saving them in the product would: a demo rule that does not parse fails the seed.
        "ast": [_rule_ast(r[0], r[2]) for r in catalog.RULES],
        "points": [float(r[3]) for r in catalog.RULES],
        "params": [r[4] for r in catalog.RULES],
        "active": True,
        "version": 1,
        "author_id": catalog.MARKETER_ID,
        "created_at": np.full(len(ids), created),
    }
    world.add("rule", {**columns, "updated_at": np.full(len(ids), created)})
    world.add("ruleversion", {**{k: v for k, v in columns.items() if k != "kind"}, "rule_id": ids, "id": ids,
                              "note": "初始版本"})
    world.add("setting", {
        "key": ["scoring"],
        "value": [{"grade_bands": dict(catalog.GRADE_BANDS)}],
        "updated_at": [created],
        "updated_by_id": [catalog.MARKETER_ID],
    })
    world.add("routingrule", {
        "id": list(range(1, len(catalog.ROUTING_RULES) + 1)),
        "position": list(range(1, len(catalog.ROUTING_RULES) + 1)),
        "name": [r["name"] for r in catalog.ROUTING_RULES],
        "kind": [r["kind"] for r in catalog.ROUTING_RULES],
        "params": [r["params"] for r in catalog.ROUTING_RULES],
        "rep_ids": [r["rep_ids"] for r in catalog.ROUTING_RULES],
        "active": True,
    })


# ---------------------------------------------------------------------------------------------------------------
# Tags and groups (from what the leads did)
# ---------------------------------------------------------------------------------------------------------------
def build_tags_and_groups(world: World) -> None:
    leads, tps, accounts = world.leads, world.touchpoints, world.accounts
    assert leads is not None and tps is not None and accounts is not None
    rng = world.rng
    now = world.now
    tag_rows: dict[tuple[int, int], tuple[str, int | None, int]] = {}

    def tag(lead_idx: np.ndarray, at: np.ndarray, name: str, source: str, rule: str | None = None) -> None:
        for lead, t in zip(lead_idx.tolist(), at.tolist(), strict=True):
            tag_rows.setdefault((lead, world.tag_ids[name]), (source, world.rule_ids.get(rule) if rule else None, t))

    kind = tps["kind"].to_numpy()
    t = tps["t"].to_numpy()
    lead = tps["lead"].to_numpy()

    def firsts(mask: np.ndarray, nth: int = 1) -> pd.Series:
        """Per lead, the time of its ``nth`` touch matching ``mask``."""
        picked = pd.DataFrame({"lead": lead[mask], "t": t[mask]})
        picked["n"] = picked.groupby("lead").cumcount() + 1
        return picked[picked["n"] == nth].set_index("lead")["t"]

    webinars = firsts((kind == K["webinar_attended"]) & (t >= now - 90 * DAY), 2)
    tag(webinars.index.to_numpy(), webinars.to_numpy(), "高意向", "rule", "高意向：90 天内参会两次")
    demos = firsts((kind == K["demo_request"]) & (t >= now - 30 * DAY))
    tag(demos.index.to_numpy(), demos.to_numpy(), "高意向", "rule", "高意向：30 天内预约演示")
    attended = firsts(np.isin(kind, [K["event_attended"], K["webinar_attended"]]) & (t >= now - 365 * DAY))
    tag(attended.index.to_numpy(), attended.to_numpy(), "已参会", "rule", "已参会")
    created = leads["created"].to_numpy(dtype=np.int64)
    senior = np.flatnonzero(leads["senior"].to_numpy())
    tag(senior, created[senior] + MINUTE, "决策人", "rule", "决策人")
    silent = np.flatnonzero((leads["is_fan"] & ~leads["fan_registers"]).to_numpy())
    tag(silent, created[silent] + MINUTE, "未完善信息粉丝", "import")
    customer_accounts = set(accounts.loc[accounts["is_customer"], "id"].tolist())
    old = np.flatnonzero(leads["account_id"].isin(customer_accounts).fillna(False).to_numpy(dtype=bool))
    tag(old, created[old] + MINUTE, "老客户", "import")
    assignments = world.assignments
    assert assignments is not None
    competitor = assignments.loc[assignments["reason"] == "competitor", ["lead", "decided_at"]]
    tag(competitor["lead"].to_numpy(), competitor["decided_at"].to_numpy() + HOUR, "竞品客户", "manual")
    extra = np.flatnonzero(rng.random(len(leads)) < 0.01)
    tag(extra, np.maximum(created[extra], now - rng.integers(DAY, 200 * DAY, size=len(extra))), "竞品客户", "manual")
    opp = world.opportunities or {}
    price = np.array([r == "输单：价格" for r in opp.get("lost_reason", [])], dtype=bool)
    if price.any():
        tag(np.asarray(opp["lead"])[price], np.asarray(opp["closed"])[price] + HOUR, "价格敏感", "manual")
    keys = sorted(tag_rows)
    world.add("leadtag", {
        "lead_id": [k[0] + 1 for k in keys],
        "tag_id": [k[1] for k in keys],
        "source": [tag_rows[k][0] for k in keys],
        "rule_id": [tag_rows[k][1] for k in keys],
        "created_at": [min(tag_rows[k][2], now) for k in keys],
    })

    # Groups
    world.group_ids = {name: i for i, (name, _) in enumerate(catalog.GROUPS, start=1)}
    world.add("leadgroup", {
        "id": list(world.group_ids.values()),
        "name": [g[0] for g in catalog.GROUPS],
        "description": [g[1] for g in catalog.GROUPS],
        "created_at": np.full(len(catalog.GROUPS), world.timeline.start - 20 * DAY),
    })
    members: dict[tuple[int, int], tuple[str, int]] = {}
    for fan, (group, at) in world.fan_groups.items():
        members[(world.group_ids[group], fan)] = ("workflow", at)
    viewers = firsts(kind == K["livestream_view"])
    for fan, at in zip(viewers.index.tolist(), viewers.tolist(), strict=True):
        members.setdefault((world.group_ids["直播观众"], fan), ("rule", at))
    subscribed = np.flatnonzero(
        (leads["status"] == "valid").to_numpy() & leads["email"].notna().to_numpy() & ~leads["unsubscribed"].to_numpy()
        & ((leads["channel_kind"] == "email").to_numpy() | (rng.random(len(leads)) < 0.35))
    )
    for fan in subscribed.tolist():
        members.setdefault((world.group_ids["Newsletter"], fan), ("import", int(created[fan])))
    keys = sorted(members)
    world.add("groupmember", {
        "group_id": [k[0] for k in keys],
        "lead_id": [k[1] + 1 for k in keys],
        "source": [members[k][0] for k in keys],
        "added_at": [members[k][1] for k in keys],
    })


# ---------------------------------------------------------------------------------------------------------------
# Past imports
# ---------------------------------------------------------------------------------------------------------------
def _local_text(world: World, t: int) -> str:
    return datetime.fromtimestamp(int(t) + world.timeline.offset, UTC).strftime("%Y/%m/%d %H:%M")


def build_imports(world: World) -> None:
    """A booth-scan file from the latest tradeshow and a seminar sign-in sheet (committed), and a livestream list
    imported with a wrong mapping and undone."""
    leads, tps, campaigns = world.leads, world.touchpoints, world.campaigns
    assert leads is not None and tps is not None and campaigns is not None
    rng = world.rng
    now = world.now
    leads["import_batch_id"] = 0
    field = {c: leads[c].tolist() for c in ("name", "raw_phone", "company", "title", "raw_email", "status",
                                             "invalid_reason")}
    tps["batch"] = 0
    batches: dict[str, list[Any]] = {k: [] for k in (
        "id", "channel_id", "campaign_id", "filename", "content_hash", "kind", "encoding", "mapping", "status",
        "row_count", "counts", "created_by_id", "created_at", "undone_at")}
    rows: dict[str, list[Any]] = {k: [] for k in ("batch_id", "row_number", "raw", "outcome", "lead_id", "problems",
                                                   "before")}
    specs = [("TS-CIIF", "展会", "工博会展位扫码名单.xlsx", None, DAY + 2 * HOUR),
             ("EV-SH", "线下研讨会", "上海站沙龙签到表.csv", "gb18030", 20 * HOUR)]
    for batch_id, (code, channel, filename, encoding, delay) in enumerate(specs, start=1):
        campaign = campaigns[campaigns["code"] == code].iloc[0]
        if not len(campaign["session_starts"]):
            continue
        session_end = int(campaign["session_starts"].max() + campaign["session_lengths"].max())
        created_at = min(session_end + delay, now - 30 * MINUTE)
        in_campaign = (tps["campaign_id"].to_numpy() == campaign["id"]) & (tps["t"].to_numpy() <= created_at)
        session_touches = tps[in_campaign & (tps["t"].to_numpy() >= campaign["session_starts"].min())]
        new = session_touches[session_touches["seq"] == 0]
        existing = session_touches[session_touches["seq"] > 0].drop_duplicates("lead")
        mapping = catalog.CHANNEL_IMPORT_MAPPINGS[channel]
        header = {field: column for column, field in mapping.items()}
        row_number = 0
        counts = {"inserted": 0, "updated": 0, "duplicates_in_file": 0, "invalid": 0, "touchpoints": 0}
        ordered = pd.concat([new, existing]).sort_values("t", kind="stable")
        repeat = set(rng.choice(new["lead"].to_numpy(), size=min(len(new), max(1, len(new) // 40)), replace=False)
                     .tolist()) if len(new) else set()
        batch_touches: list[int] = []
        batch_leads: list[int] = []
        for touch in ordered.itertuples():
            i = int(touch.lead)
            raw = {
                header["name"]: field["name"][i], header["phone"]: field["raw_phone"][i],
                header["company"]: field["company"][i], header["title"]: field["title"][i],
                header["email"]: field["raw_email"][i], header["occurred_at"]: _local_text(world, int(touch.t)),
            }
            is_new = touch.seq == 0
            invalid = is_new and field["status"][i] == "invalid"
            outcome = "invalid" if invalid else "inserted" if is_new else "updated"
            counts["invalid" if invalid else "inserted" if is_new else "updated"] += 1
            counts["touchpoints"] += 1
            row_number += 1
            rows["batch_id"].append(batch_id)
            rows["row_number"].append(row_number)
            rows["raw"].append(raw)
            rows["outcome"].append(outcome)
            rows["lead_id"].append(int(touch.lead) + 1)
            rows["problems"].append([field["invalid_reason"][i]] if invalid else [])
            rows["before"].append({} if outcome == "updated" else None)  # only a touchpoint was added
            batch_touches.append(touch.Index)
            if is_new:
                batch_leads.append(int(touch.lead))
            if int(touch.lead) in repeat:
                row_number += 1
                counts["duplicates_in_file"] += 1
                rows["batch_id"].append(batch_id)
                rows["row_number"].append(row_number)
                rows["raw"].append(dict(raw))
                rows["outcome"].append("duplicate")
                rows["lead_id"].append(int(touch.lead) + 1)
                rows["problems"].append([f"与第 {row_number - 1} 行重复"])
                rows["before"].append(None)
        tps.loc[batch_touches, "batch"] = batch_id
        leads.loc[batch_leads, "import_batch_id"] = batch_id
        _batch(batches, batch_id, campaign, filename, encoding, mapping, "committed", row_number, counts,
               created_at, None, world)

    # The undone one: the phone column was mapped to the company and the other way round.
    campaign = campaigns[campaigns["code"] == "LIVE-CS"].iloc[0]
    if len(campaign["session_starts"]):
        batch_id = len(batches["id"]) + 1
        created_at = min(int(campaign["session_starts"].max()) + DAY, now - 20 * MINUTE)
        mapping = {"昵称": "name", "手机号": "company", "公司名称": "phone", "观看时长(分钟)": "minutes"}
        candidates = leads[(leads["status"] == "valid") & leads["raw_phone"].notna()]
        sample = candidates.iloc[np.sort(rng.choice(len(candidates), size=min(8, len(candidates)), replace=False))]
        for number, lead in enumerate(sample.itertuples(), start=1):
            rows["batch_id"].append(batch_id)
            rows["row_number"].append(number)
            rows["raw"].append({"昵称": lead.name, "手机号": lead.raw_phone, "公司名称": lead.company,
                                "观看时长(分钟)": int(rng.integers(5, 90))})
            rows["outcome"].append("inserted")
            rows["lead_id"].append(None)  # the leads it created were removed by the undo
            rows["problems"].append(["公司名称像手机号", "手机号无效"])
            rows["before"].append(None)
        counts = {"inserted": len(sample), "updated": 0, "duplicates_in_file": 0, "invalid": 0,
                  "touchpoints": len(sample)}
        _batch(batches, batch_id, campaign, "智能客服直播报名名单.csv", "utf-8-sig", mapping, "undone", len(sample),
               counts, created_at, min(created_at + 25 * MINUTE, now - MINUTE), world)
    world.add("importbatch", {**batches, "is_demo": True})
    world.add("importrow", {"id": list(range(1, len(rows["raw"]) + 1)), **rows})


def _batch(batches: dict[str, list[Any]], batch_id: int, campaign: pd.Series, filename: str, encoding: str | None,
           mapping: dict[str, str], status: str, row_count: int, counts: dict[str, int], created_at: int,
           undone_at: int | None, world: World) -> None:
    batches["id"].append(batch_id)
    batches["channel_id"].append(int(campaign["channel_id"]))
    batches["campaign_id"].append(int(campaign["id"]))
    batches["filename"].append(filename)
    batches["content_hash"].append(hashlib.sha256(f"seed:{world.seed}:{filename}".encode()).hexdigest())
    batches["kind"].append("leads")
    batches["encoding"].append(encoding)
    batches["mapping"].append(mapping)
    batches["status"].append(status)
    batches["row_count"].append(row_count)
    batches["counts"].append(counts)
    batches["created_by_id"].append(catalog.MARKETER_ID)
    batches["created_at"].append(created_at)
    batches["undone_at"].append(undone_at)


# ---------------------------------------------------------------------------------------------------------------
# Dedup review queue, job runs, audit
# ---------------------------------------------------------------------------------------------------------------
REASONS = {
    "pinyin": (0.82, ["同名（拼音）", "手机号相同"]),
    "phone_typo": (0.68, ["同名", "手机号相差一位", "公司名称相近"]),
    "company_variant": (0.76, ["同名", "邮箱相同", "公司名称相近"]),
    "same_contact": (0.88, ["同名", "手机号相同", "邮箱相同"]),
}


def build_candidates(world: World) -> None:
    leads = world.leads
    assert leads is not None
    rng = world.rng
    now = world.now
    dups = np.flatnonzero(leads["is_dup"].to_numpy())
    count = min(len(dups), max(3, round(len(dups) * 0.15)))
    chosen = np.sort(rng.choice(dups, size=count, replace=False)) if count else dups[:0]
    left, right, score, reasons, created = [], [], [], [], []
    for dup in chosen.tolist():
        original = int(leads.at[dup, "dup_of"])
        kind = leads.at[dup, "dup_kind"]
        base, why = REASONS[kind]
        why = list(why)
        if kind == "company_variant" and leads.at[dup, "email"] is None:
            why = ["同名", "公司名称相近"]
        left.append(min(original, dup) + 1)
        right.append(max(original, dup) + 1)
        score.append(round(float(np.clip(base + rng.uniform(-0.04, 0.04), 0.6, 0.9)), 2))
        reasons.append(why)
        created.append(min(int(leads.at[dup, "created"]) + int(rng.integers(5 * MINUTE, DAY)), now - MINUTE))
    world.add("duplicatecandidate", {
        "id": list(range(1, len(left) + 1)), "left_id": left, "right_id": right, "score": score, "reasons": reasons,
        "status": "pending", "created_at": created,
    })


def build_operations(world: World, counts: dict[str, int]) -> None:
    now = world.now
    assignments = world.assignments
    assert assignments is not None
    pending = assignments[assignments["status"] == "pending"]
    world.add("jobrun", {
        "id": [1, 2, 3],
        "job": ["dedup_scan", "sla_check", "workflow_tick"],
        "holder": "seed",
        "started_at": [now - HOUR, now - 5 * MINUTE, now - MINUTE],
        "finished_at": [now - HOUR + 12, now - 5 * MINUTE + 1, now - MINUTE + 2],
        "ok": True,
        "summary": [{"pairs": counts.get("duplicatecandidate", 0)},
                    {"pending": len(pending), "breached": int(pending["breached"].sum())},
                    {"due": 0, "done": 0}],
    })


def build_display_names(world: World) -> None:
    """English labels for the demo's Chinese names (core.display_names)."""
    rows = [(kind, name, text) for kind, texts in catalog.ENGLISH_NAMES.items() for name, text in texts.items()]
    world.add("displayname", {
        "id": list(range(1, len(rows) + 1)),
        "kind": [r[0] for r in rows],
        "name": [r[1] for r in rows],
        "lang": ["en"] * len(rows),
        "text": [r[2] for r in rows],
    })
