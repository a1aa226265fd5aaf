"""What a workflow is made of: triggers, step types, and the checks a definition must pass before it runs.

A definition is ``{"start": step_id, "steps": {step_id: {"type": ..., params..., "next": id}}, "goals": [check]}``.
Conditions and splits have two exits instead of ``next``: ``yes``/``no`` and ``a``/``b``. A *check* (used by the
condition step and by exit goals) is ``{"kind": "opened" | "clicked" | "registered" | "has_tag" | "in_group" |
"stage_is" | "rule", ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import ValidationError
from db.models import Stage, TouchpointKind

ACTIONS = ("send_email", "send_sms", "send_wechat", "send_wecom", "add_tag", "remove_tag", "add_group",
           "remove_group", "move_group", "change_stage", "adjust_score", "assign", "notify", "webhook")
WAITS = ("wait", "wait_until", "wait_window")
BRANCHES = ("condition", "split")
STEP_TYPES = (*ACTIONS, *WAITS, *BRANCHES, "end")
# Which exits each kind of step has.
EXITS: dict[str, tuple[str, ...]] = {"condition": ("yes", "no"), "split": ("a", "b"), "end": ()}
CHECK_KINDS = ("opened", "clicked", "registered", "has_tag", "in_group", "stage_is", "rule")
TRIGGER_TYPES = ("manual", "group_enter", "group_leave", "tag_added", "score_crosses", "grade_crosses",
                 "stage_becomes", "touchpoint", "imported", "rejected")
REENTRY = ("never", "after_days", "always")
GRADES = ("A", "B", "C", "D")
# Required parameters per step type (beyond the exits).
REQUIRED: dict[str, tuple[str, ...]] = {
    "send_email": ("subject", "body"), "send_sms": ("text",), "send_wechat": ("text",), "send_wecom": ("text",),
    "add_tag": ("tag",), "remove_tag": ("tag",), "add_group": ("group",), "remove_group": ("group",),
    "move_group": ("from", "to"), "change_stage": ("stage",), "adjust_score": ("points",), "notify": ("text",),
    "webhook": ("url",), "wait_until": ("at",), "condition": ("check",),
}


def exits(step: dict[str, Any]) -> tuple[str, ...]:
    return EXITS.get(str(step.get("type")), ("next",))


def successors(step: dict[str, Any]) -> list[str]:
    return [str(step[name]) for name in exits(step) if step.get(name)]


def wait_seconds(step: dict[str, Any]) -> float:
    """How long a duration wait lasts (0 for other steps)."""
    if step.get("type") != "wait":
        return 0.0
    try:
        return (float(step.get("days") or 0) * 86400 + float(step.get("hours") or 0) * 3600
                + float(step.get("minutes") or 0) * 60)
    except (TypeError, ValueError):
        return 0.0


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition, about one step (or the whole workflow when ``step`` is empty)."""

    step: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)


def problem_text(problem: Problem, lang: str) -> str:
    """One problem in ``lang`` (a rule error inside it is translated too)."""
    from core.errors import LeadLoopError
    from core.i18n import t

    params = {k: v.localized(lang) if isinstance(v, LeadLoopError) else v for k, v in problem.params.items()}
    return t(problem.key, lang, **params)


class WorkflowInvalid(ValidationError):
    """A definition that may not run; ``problems`` lists every issue with its step id."""

    key = "workflows.invalid"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(key="workflows.invalid", count=len(problems))

    def localized(self, lang: str) -> str:
        from core.i18n import t

        lines = [t("workflows.invalid", lang, count=len(self.problems))]
        for problem in self.problems:
            text = problem_text(problem, lang)
            lines.append(f"- {problem.step}: {text}" if problem.step else f"- {text}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.localized("en")


def validate_check(check: Any, step: str, problems: list[Problem]) -> None:
    if not isinstance(check, dict) or check.get("kind") not in CHECK_KINDS:
        problems.append(Problem(step, "workflows.problem.check_kind", {"kind": (check or {}).get("kind", "")
                                                                          if isinstance(check, dict) else ""}))
        return
    kind = check["kind"]
    needed = {"has_tag": "tag", "in_group": "group", "stage_is": "stage", "rule": "rule"}.get(kind)
    if needed and not str(check.get(needed) or "").strip():
        problems.append(Problem(step, "workflows.problem.missing", {"param": needed}))
    if kind == "rule" and str(check.get("rule") or "").strip():
        from core.errors import LeadLoopError
        from core.rules import parse

        try:
            parse(str(check["rule"]))
        except LeadLoopError as error:
            problems.append(Problem(step, "workflows.problem.rule", {"error": error}))


def _validate_step(step_id: str, step: Any, steps: dict[str, Any], problems: list[Problem]) -> None:
    if not isinstance(step, dict):
        problems.append(Problem(step_id, "workflows.problem.unknown_type", {"type": ""}))
        return
    kind = step.get("type")
    if kind not in STEP_TYPES:
        problems.append(Problem(step_id, "workflows.problem.unknown_type", {"type": kind or ""}))
        return
    for param in REQUIRED.get(kind, ()):
        value = step.get(param)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append(Problem(step_id, "workflows.problem.missing", {"param": param}))
    for name in exits(step):
        target = step.get(name)
        if not target:
            key = "workflows.problem.branch_without_path" if kind in BRANCHES else "workflows.problem.no_next"
            problems.append(Problem(step_id, key, {"exit": name}))
        elif target not in steps:
            problems.append(Problem(step_id, "workflows.problem.unknown_target", {"exit": name, "target": target}))
    if kind == "wait" and wait_seconds(step) <= 0:
        problems.append(Problem(step_id, "workflows.problem.wait_duration"))
    if kind == "wait_window":
        try:
            start, end = int(step.get("start_hour", 9)), int(step.get("end_hour", 18))
            days = [int(d) for d in step.get("weekdays", [0, 1, 2, 3, 4])]
            ok = 0 <= start < end <= 24 and days and all(0 <= d <= 6 for d in days)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(Problem(step_id, "workflows.problem.window"))
    if kind == "change_stage" and step.get("stage") and step["stage"] not in {s.value for s in Stage}:
        problems.append(Problem(step_id, "workflows.problem.stage", {"stage": step["stage"]}))
    if kind == "adjust_score":
        try:
            float(step.get("points"))
        except (TypeError, ValueError):
            problems.append(Problem(step_id, "workflows.problem.points"))
    if kind == "split":
        try:
            ok = 0 < float(step.get("percent", 50)) < 100
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(Problem(step_id, "workflows.problem.percent"))
    if kind == "webhook" and not str(step.get("url") or "").startswith(("http://", "https://")):
        problems.append(Problem(step_id, "workflows.problem.url"))
    if kind == "condition" and step.get("check") is not None:
        validate_check(step["check"], step_id, problems)


def _loops_without_wait(steps: dict[str, Any]) -> list[str]:
    """Steps on a cycle that passes no duration wait (a lead would spin there forever within one tick)."""
    graph = {sid: [t for t in successors(s) if t in steps and wait_seconds(steps[t]) <= 0]
             for sid, s in steps.items() if isinstance(s, dict) and wait_seconds(s) <= 0}
    # Tarjan-free approach: a node is on a wait-free cycle when it can reach itself inside ``graph``.
    on_cycle: list[str] = []
    for origin in graph:
        seen: set[str] = set()
        stack = list(graph[origin])
        while stack:
            node = stack.pop()
            if node == origin:
                on_cycle.append(origin)
                break
            if node in seen or node not in graph:
                continue
            seen.add(node)
            stack.extend(graph[node])
    return sorted(on_cycle)


def validate_definition(definition: Any) -> list[Problem]:
    """Every problem of a definition (empty when it may run)."""
    problems: list[Problem] = []
    if not isinstance(definition, dict) or not isinstance(definition.get("steps"), dict) or not definition["steps"]:
        return [Problem("", "workflows.problem.no_steps")]
    steps: dict[str, Any] = definition["steps"]
    start = definition.get("start")
    if start not in steps:
        problems.append(Problem("", "workflows.problem.no_start", {"start": start or ""}))
    for step_id, step in steps.items():
        _validate_step(step_id, step, steps, problems)
    if start in steps:
        reached: set[str] = set()
        stack = [start]
        while stack:
            node = stack.pop()
            if node in reached or node not in steps or not isinstance(steps[node], dict):
                continue
            reached.add(node)
            stack.extend(successors(steps[node]))
        for step_id in steps:
            if step_id not in reached:
                problems.append(Problem(step_id, "workflows.problem.unreachable"))
    for step_id in _loops_without_wait(steps):
        problems.append(Problem(step_id, "workflows.problem.loop_without_wait"))
    for goal in definition.get("goals") or []:
        validate_check(goal, "", problems)
    return problems


def validate_trigger(trigger: Any) -> list[Problem]:
    if not isinstance(trigger, dict) or trigger.get("type") not in TRIGGER_TYPES:
        return [Problem("", "workflows.problem.trigger", {"type": (trigger or {}).get("type", "")
                                                          if isinstance(trigger, dict) else ""})]
    kind = trigger["type"]
    needed = {"group_enter": "group", "group_leave": "group", "tag_added": "tag", "stage_becomes": "stage",
              "score_crosses": "threshold", "grade_crosses": "grade", "imported": "channel"}.get(kind)
    problems = []
    if needed and (trigger.get(needed) is None or str(trigger.get(needed)).strip() == ""):
        problems.append(Problem("", "workflows.problem.trigger_param", {"param": needed}))
    if kind == "touchpoint" and not (trigger.get("kind") or trigger.get("campaign")):
        problems.append(Problem("", "workflows.problem.trigger_param", {"param": "kind"}))
    if kind == "touchpoint" and trigger.get("kind") and trigger["kind"] not in {k.value for k in TouchpointKind}:
        problems.append(Problem("", "workflows.problem.trigger_param", {"param": "kind"}))
    if kind == "grade_crosses" and trigger.get("grade") and trigger["grade"] not in GRADES:
        problems.append(Problem("", "workflows.problem.trigger_param", {"param": "grade"}))
    if kind == "score_crosses":
        try:
            float(trigger.get("threshold"))
        except (TypeError, ValueError):
            problems.append(Problem("", "workflows.problem.trigger_param", {"param": "threshold"}))
    if trigger.get("condition"):
        validate_check({"kind": "rule", "rule": trigger["condition"]}, "", problems)
    return problems


def check_workflow(trigger: Any, definition: Any, reentry: str = "never", reentry_days: int | None = None) -> None:
    """Raise ``WorkflowInvalid`` listing every problem of a workflow that is about to run."""
    problems = validate_trigger(trigger) + validate_definition(definition)
    if reentry not in REENTRY:
        problems.append(Problem("", "workflows.problem.reentry"))
    elif reentry == "after_days" and not (reentry_days and reentry_days > 0):
        problems.append(Problem("", "workflows.problem.reentry"))
    if problems:
        raise WorkflowInvalid(problems)


# ---------------------------------------------------------------------------------------------------------------
# Editing helpers (pure: they return a new definition) and the diagram
# ---------------------------------------------------------------------------------------------------------------
def with_step(definition: dict[str, Any], step_id: str, step: dict[str, Any], *, old_id: str | None = None,
              start: bool = False) -> dict[str, Any]:
    """The definition with ``step`` saved under ``step_id`` (renaming ``old_id`` rewires the paths into it)."""
    step_id = step_id.strip()
    if not step_id or len(step_id) > 64:
        raise ValidationError("A step needs an id of up to 64 characters.", key="workflows.step_id_invalid")
    steps = {k: dict(v) for k, v in (definition.get("steps") or {}).items()}
    if old_id and old_id != step_id:
        if step_id in steps:
            raise ValidationError(f"A step {step_id} exists already.", key="workflows.step_exists", step=step_id)
        steps.pop(old_id, None)
        for other in steps.values():
            for name in ("next", "yes", "no", "a", "b"):
                if other.get(name) == old_id:
                    other[name] = step_id
    elif not old_id and step_id in steps:
        raise ValidationError(f"A step {step_id} exists already.", key="workflows.step_exists", step=step_id)
    steps[step_id] = dict(step)
    out = {**definition, "steps": steps}
    if start or not definition.get("start") or (old_id and definition.get("start") == old_id):
        out["start"] = step_id
    return out


def without_step(definition: dict[str, Any], step_id: str) -> dict[str, Any]:
    """The definition without ``step_id``; paths that led to it lead where it led (or nowhere, for branches)."""
    steps = {k: dict(v) for k, v in (definition.get("steps") or {}).items() if k != step_id}
    removed = (definition.get("steps") or {}).get(step_id) or {}
    follow = removed.get("next") if "next" in exits(removed) else None
    for other in steps.values():
        for name in ("next", "yes", "no", "a", "b"):
            if other.get(name) == step_id:
                if follow:
                    other[name] = follow
                else:
                    other.pop(name, None)
    out = {**definition, "steps": steps}
    if definition.get("start") == step_id:
        out["start"] = follow or next(iter(steps), None)
    return out


def _dot_text(value: Any, limit: int = 40) -> str:
    text = str(value).replace("\n", " ")
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(definition: dict[str, Any], labels: dict[str, str] | None = None,
           counts: dict[str, str] | None = None) -> str:
    """Graphviz DOT text of the flow (rendered in the browser by st.graphviz_chart; no system binary)."""
    labels = labels or {}
    lines = ['digraph workflow {', '  rankdir=TB;', '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb",'
             ' fontname="Noto Sans CJK SC, sans-serif", fontsize=11];', '  edge [fontsize=10];']
    steps = definition.get("steps") or {}
    for step_id, step in steps.items():
        if not isinstance(step, dict):
            continue
        kind = str(step.get("type"))
        shape = {"condition": "diamond", "split": "diamond", "end": "oval"}.get(kind, "box")
        fill = {"wait": "#fff4d6", "wait_until": "#fff4d6", "wait_window": "#fff4d6", "end": "#e8f5e9"}.get(
            kind, "#eef3fb")
        detail = step.get("subject") or step.get("text") or step.get("tag") or step.get("group") or step.get("to") \
            or step.get("stage") or ""
        if kind == "wait":
            detail = f"{step.get('days') or 0}d {step.get('hours') or 0}h {step.get('minutes') or 0}m"
        text = "\\n".join(part for part in (_dot_text(step_id), _dot_text(labels.get(kind, kind)), _dot_text(detail, 22),
                                            _dot_text((counts or {}).get(step_id, ""))) if part)
        border = ', penwidth=2, color="#1f77b4"' if step_id == definition.get("start") else ""
        lines.append(f'  "{_dot_text(step_id)}" [label="{text}", shape={shape}, fillcolor="{fill}"{border}];')
        for name in exits(step):
            target = step.get(name)
            if target:
                edge_label = f' [label="{_dot_text(labels.get("exit." + name, name))}"]' if name != "next" else ""
                lines.append(f'  "{_dot_text(step_id)}" -> "{_dot_text(target)}"{edge_label};')
    lines.append("}")
    return "\n".join(lines)
