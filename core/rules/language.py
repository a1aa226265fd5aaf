"""The rule language: a Lark LALR grammar, the field registry, and ``parse``/``check`` into a JSON-able AST.

Rules are data, never code: the text is tokenized by a fixed grammar, every name must be in the registry below,
and literals stay values (the SQL compiler binds them as parameters). Limits on length, nesting and literal size
are checked before the parser runs so hostile input fails fast.

AST (plain dicts, stored as JSON beside the text):
- ``{"and": [node, ...]}``, ``{"or": [node, ...]}``, ``{"not": node}``
- ``{"cmp": op, "left": operand, "right": value, "pos": [line, column]}`` with op one of
  ``= != > >= < <= contains starts_with ends_with in empty``
- ``{"fn": "has_tag" | "in_group", "args": [name], "pos": [...]}`` (boolean calls)
- operand: ``{"field": name}`` or ``{"fn": "count", "args": [kind, days | None]}``
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from rapidfuzz import fuzz, process

from core.errors import LeadLoopError
from db.models import Stage, TouchpointKind

MAX_TEXT = 4000  # characters of rule text
MAX_DEPTH = 24  # nested parentheses / not
MAX_LITERAL = 200  # characters of one string literal
MAX_LIST = 200  # values in one in (...)
MAX_NODES = 400  # comparisons and calls in one rule


class RuleSyntaxError(LeadLoopError):
    """A rule that does not parse or does not type-check; ``line``/``column`` point at the problem (1-based)."""

    key = "rules.error.syntax"

    def __init__(self, message: str, *, line: int = 1, column: int = 1, key: str | None = None,
                 **params: Any) -> None:
        self.line = line
        self.column = column
        self.message = message
        super().__init__(None, key=key or self.key, line=line, column=column, detail=message, **params)

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


# ---------------------------------------------------------------------------------------------------------------
# Field registry
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # text | number | bool
    source: str  # column | lookup | score | days | touchpoint
    aliases: tuple[str, ...] = ()
    column: str = ""
    values: tuple[str, ...] = ()  # allowed values (checked, with suggestions)
    context: str = "lead"  # lead | touchpoint (only in engagement rules)
    extra: dict[str, str] = field(default_factory=dict)


_STAGES = tuple(s.value for s in Stage)
_KINDS = tuple(k.value for k in TouchpointKind)

FIELDS: dict[str, FieldSpec] = {f.name: f for f in [
    FieldSpec("name", "text", "column", ("姓名",), "name"),
    FieldSpec("email", "text", "column", ("邮箱",), "email"),
    FieldSpec("phone", "text", "column", ("手机", "电话"), "phone"),
    FieldSpec("wechat_id", "text", "column", ("微信号",), "wechat_id"),
    FieldSpec("company", "text", "column", ("公司",), "company"),
    FieldSpec("title", "text", "column", ("职位", "职务"), "title"),
    FieldSpec("industry", "text", "column", ("行业",), "industry"),
    FieldSpec("province", "text", "column", ("省份",), "province"),
    FieldSpec("city", "text", "column", ("城市",), "city"),
    FieldSpec("product_interest", "text", "column", ("产品兴趣", "意向产品"), "product_interest"),
    FieldSpec("utm_source", "text", "column", (), "utm_source"),
    FieldSpec("utm_medium", "text", "column", (), "utm_medium"),
    FieldSpec("utm_campaign", "text", "column", (), "utm_campaign"),
    FieldSpec("stage", "text", "column", ("阶段",), "stage", values=_STAGES),
    FieldSpec("grade", "text", "column", ("等级",), "grade", values=("A", "B", "C", "D")),
    FieldSpec("source_channel", "text", "lookup", ("来源渠道",), "source_channel_id", extra={"table": "channel"}),
    FieldSpec("source_campaign", "text", "lookup", ("来源活动",), "source_campaign_id", extra={"table": "campaign"}),
    FieldSpec("company_size", "number", "column", ("公司规模", "企业规模"), "company_size"),
    FieldSpec("fit", "number", "column", ("契合分", "fit_score"), "fit_score"),
    FieldSpec("engagement", "number", "column", ("互动分", "engagement_score"), "engagement_score"),
    FieldSpec("score", "number", "score", ("总分",)),
    FieldSpec("days_since_last_activity", "number", "days", ("距上次互动天数",), "last_activity_at"),
    FieldSpec("days_since_created", "number", "days", ("创建天数",), "created_at"),
    FieldSpec("is_customer", "bool", "column", ("是客户",), "is_customer"),
    FieldSpec("unsubscribed", "bool", "column", ("已退订",), "unsubscribed"),
    # What the touchpoint itself was: only in engagement rules, which score one touchpoint at a time.
    FieldSpec("kind", "text", "touchpoint", ("行为", "行为类型"), "kind", values=_KINDS, context="touchpoint"),
    FieldSpec("channel", "text", "lookup", ("渠道",), "channel_id", context="touchpoint",
              extra={"table": "channel"}),
    FieldSpec("campaign", "text", "lookup", ("活动",), "campaign_id", context="touchpoint",
              extra={"table": "campaign"}),
]}

# name -> (result type, argument kinds); "kind" takes a touchpoint kind, "window" an optional 90d.
FUNCTIONS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "count": ("number", ("kind", "window"), ("次数",)),
    "has_tag": ("bool", ("text",), ("有标签",)),
    "in_group": ("bool", ("text",), ("在分组",)),
}

_FIELD_ALIASES = {alias.lower(): spec.name for spec in FIELDS.values() for alias in (spec.name, *spec.aliases)}
_FUNCTION_ALIASES = {alias.lower(): name for name, (_, _, aliases) in FUNCTIONS.items() for alias in (name, *aliases)}
KIND_ALIASES = {"any": "*", "全部": "*", "任意": "*"}


def suggest(word: str, choices: list[str]) -> str | None:
    """The closest known name to a misspelt one (or None when nothing is close)."""
    found = process.extractOne(word.lower(), choices, scorer=fuzz.ratio, score_cutoff=60)
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------------------------
# Grammar
# ---------------------------------------------------------------------------------------------------------------
# Chinese keywords may be written without spaces (职位包含"总监"), so a name stops where a keyword starts.
_ZH_KEYWORDS = "包含|属于|并且|或者|且|或|不|非|为空|开头是|结尾是|等于|大于|小于"

GRAMMAR = r"""
start: or_expr

?or_expr: and_expr (_OR and_expr)*  -> or_
?and_expr: not_expr (_AND not_expr)*  -> and_
?not_expr: _NOT not_expr  -> not_
    | atom
?atom: _LPAR or_expr _RPAR
    | operand CMP value  -> compare
    | operand TEXTOP value  -> text_match
    | operand _NOT TEXTOP value  -> text_match_not
    | operand _IN _LPAR values _RPAR  -> member
    | operand _NOT _IN _LPAR values _RPAR  -> member_not
    | operand EMPTY  -> empty
    | operand NOTEMPTY  -> not_empty
    | NAME  -> bare_name
    | call  -> bare_call

operand: NAME | call
call: NAME _LPAR [arg (_COMMA arg)*] _RPAR
?arg: STRING | NUMBER | DURATION | NAME
values: value (_COMMA value)*
?value: STRING | NUMBER | TRUE | FALSE

_OR.2: /or(?![\w])/i | "或者" | "或"
_AND.2: /and(?![\w])/i | "并且" | "且"
_NOT.2: /not(?![\w])/i | "不" | "非"
_IN.2: /in(?![\w])/i | "属于"
TEXTOP.2: /contains(?![\w])/i | /starts_with(?![\w])/i | /ends_with(?![\w])/i | "包含" | "开头是" | "结尾是"
EMPTY.3: /is\s+empty(?![\w])/i | "为空"
NOTEMPTY.3: /is\s+not\s+empty(?![\w])/i | "不为空"
TRUE.2: /true(?![\w])/i | "真"
FALSE.2: /false(?![\w])/i | "假"
CMP.2: "==" | "=" | "!=" | "<>" | ">=" | "<=" | ">" | "<" | "≥" | "≤" | "不等于" | "等于" | "大于等于" | "小于等于" | "大于" | "小于"
_LPAR: "(" | "（"
_RPAR: ")" | "）"
_COMMA: "," | "，"
DURATION.3: /\d+\s*(d|天)(?![\w])/i
NUMBER: /-?\d+(\.\d+)?(?![\w])/
STRING: /"[^"\n]*"/ | /'[^'\n]*'/ | /“[^”\n]*”/ | /「[^」\n]*」/
NAME: /(?!(?:ZHKW))[^\W\d](?:(?!(?:ZHKW))\w)*/

%import common.WS
%ignore WS
""".replace("ZHKW", _ZH_KEYWORDS)

_PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)

_CMP_NAMES = {"==": "=", "=": "=", "等于": "=", "!=": "!=", "<>": "!=", "不等于": "!=", ">=": ">=", "≥": ">=",
              "大于等于": ">=", "<=": "<=", "≤": "<=", "小于等于": "<=", ">": ">", "大于": ">", "<": "<", "小于": "<"}
_TEXTOP_NAMES = {"contains": "contains", "包含": "contains", "starts_with": "starts_with", "开头是": "starts_with",
                 "ends_with": "ends_with", "结尾是": "ends_with"}
_TOKEN_NAMES = {"_OR": "or", "_AND": "and", "_NOT": "not", "_IN": "in", "TEXTOP": "contains", "EMPTY": "is empty",
                "NOTEMPTY": "is not empty", "CMP": "=", "_LPAR": "(", "_RPAR": ")", "_COMMA": ",", "STRING": '"text"',
                "NUMBER": "number", "DURATION": "90d", "NAME": "field", "TRUE": "true", "FALSE": "false",
                "$END": "end of rule"}


def _pos(item: Any) -> list[int]:
    if isinstance(item, Token):
        return [item.line or 1, item.column or 1]
    meta = getattr(item, "meta", None)
    if meta is not None and not getattr(meta, "empty", True):
        return [meta.line, meta.column]
    return [1, 1]


@dataclass
class _Name:
    text: str
    pos: list[int]


@dataclass
class _Call:
    name: str
    args: list[Any]
    pos: list[int]


def _literal(token: Token) -> Any:
    kind = token.type
    if kind == "STRING":
        text = str(token)[1:-1]
        if len(text) > MAX_LITERAL:
            raise RuleSyntaxError(f"text longer than {MAX_LITERAL} characters", line=token.line or 1,
                                  column=token.column or 1, key="rules.error.literal_too_long", limit=MAX_LITERAL)
        return text
    if kind == "NUMBER":
        number = float(token)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "TRUE":
        return True
    if kind == "FALSE":
        return False
    if kind == "DURATION":
        return {"days": int(re.match(r"\d+", str(token)).group())}  # type: ignore[union-attr]
    return _Name(str(token), _pos(token))


class _ToAst(Transformer):
    """Parse tree → raw AST (names not yet resolved; ``_resolve`` does that with the registry)."""

    def start(self, items: list[Any]) -> Any:
        return items[0]

    def or_(self, items: list[Any]) -> Any:
        return items[0] if len(items) == 1 else {"or": items}

    def and_(self, items: list[Any]) -> Any:
        return items[0] if len(items) == 1 else {"and": items}

    def not_(self, items: list[Any]) -> Any:
        return {"not": items[0]}

    def operand(self, items: list[Any]) -> Any:
        item = items[0]
        return _Name(str(item), _pos(item)) if isinstance(item, Token) else item

    @v_args(meta=True)
    def call(self, meta: Any, items: list[Any]) -> _Call:
        name = items[0]
        return _Call(str(name), [_literal(a) if isinstance(a, Token) else a for a in items[1:]], _pos(name))

    def values(self, items: list[Any]) -> list[Any]:
        if len(items) > MAX_LIST:
            raise RuleSyntaxError(f"more than {MAX_LIST} values in one list", line=_pos(items[0])[0],
                                  column=_pos(items[0])[1], key="rules.error.list_too_long", limit=MAX_LIST)
        return [_literal(v) for v in items]

    def compare(self, items: list[Any]) -> Any:
        left, op, value = items
        return {"cmp": _CMP_NAMES[str(op)], "left": left, "right": _literal(value), "pos": _pos(op)}

    def text_match(self, items: list[Any]) -> Any:
        left, op, value = items
        return {"cmp": _TEXTOP_NAMES[str(op).lower()], "left": left, "right": _literal(value), "pos": _pos(op)}

    def text_match_not(self, items: list[Any]) -> Any:
        return {"not": self.text_match(items)}

    def member(self, items: list[Any]) -> Any:
        left, values = items
        return {"cmp": "in", "left": left, "right": values, "pos": left.pos}

    def member_not(self, items: list[Any]) -> Any:
        return {"not": self.member(items)}

    def empty(self, items: list[Any]) -> Any:
        return {"cmp": "empty", "left": items[0], "right": None, "pos": _pos(items[1])}

    def not_empty(self, items: list[Any]) -> Any:
        return {"not": self.empty(items)}

    def bare_name(self, items: list[Any]) -> Any:
        return {"bare": _Name(str(items[0]), _pos(items[0]))}

    def bare_call(self, items: list[Any]) -> Any:
        return {"bare": items[0]}


# ---------------------------------------------------------------------------------------------------------------
# Parse and check
# ---------------------------------------------------------------------------------------------------------------
def _prescan(text: str) -> None:
    """Cheap limits before Lark runs: size, nesting depth, literal length (quotes are balanced per line)."""
    if len(text) > MAX_TEXT:
        raise RuleSyntaxError(f"the rule is longer than {MAX_TEXT} characters", key="rules.error.too_long",
                              limit=MAX_TEXT)
    if not text.strip():
        raise RuleSyntaxError("the rule is empty", key="rules.error.empty")
    depth, line, column, quote = 0, 1, 0, ""
    closing = {'"': '"', "'": "'", "“": "”", "「": "」"}
    for char in text:
        column += 1
        if char == "\n":
            line, column, quote = line + 1, 0, ""
        elif quote:
            if char == quote:
                quote = ""
        elif char in closing:
            quote = closing[char]
        elif char in "(（":
            depth += 1
            if depth > MAX_DEPTH:
                raise RuleSyntaxError(f"more than {MAX_DEPTH} nested parentheses", line=line, column=column,
                                      key="rules.error.too_deep", limit=MAX_DEPTH)
        elif char in ")）":
            depth -= 1


def _syntax_error(error: UnexpectedInput, text: str) -> RuleSyntaxError:
    line, column = getattr(error, "line", 1) or 1, getattr(error, "column", 1) or 1
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream] if error.pos_in_stream is not None else "?"
        if char in "\"'“「":
            return RuleSyntaxError("a text value is not closed with its quote", line=line, column=column,
                                   key="rules.error.unclosed_quote")
        return RuleSyntaxError(f"unexpected character “{char}”", line=line, column=column,
                               key="rules.error.unexpected_char", char=char)
    if isinstance(error, UnexpectedEOF) or (isinstance(error, UnexpectedToken) and error.token.type == "$END"):
        if isinstance(error, UnexpectedToken):
            line, column = _end_position(text)
        else:
            line, column = _end_position(text)
        return RuleSyntaxError("the rule ends too early", line=line, column=column, key="rules.error.unexpected_end")
    token = error.token if isinstance(error, UnexpectedToken) else None
    if token is not None and token.type == "NAME" and "STRING" in getattr(error, "expected", set()):
        return RuleSyntaxError(f"“{token}” must be in quotes", line=line, column=column,
                               key="rules.error.quote_value", value=str(token))
    expected = sorted({_TOKEN_NAMES.get(name, name) for name in getattr(error, "expected", set())})[:6]
    found = str(token) if token is not None else "?"
    return RuleSyntaxError(f"unexpected “{found}”; expected one of: {', '.join(expected)}", line=line,
                           column=column, key="rules.error.unexpected_token", token=found,
                           expected=", ".join(expected))


def _end_position(text: str) -> tuple[int, int]:
    lines = text.rstrip().split("\n")
    return len(lines), len(lines[-1]) + 1


def parse(text: str, *, context: str = "lead") -> dict[str, Any]:
    """Parse and type-check rule text into its AST; raises :class:`RuleSyntaxError` with line and column.

    ``context="touchpoint"`` (engagement rules) also allows the touchpoint's own fields ``kind``, ``channel``,
    ``campaign``."""
    if not isinstance(text, str):
        raise RuleSyntaxError("the rule must be text", key="rules.error.empty")
    _prescan(text)
    try:
        raw = _ToAst().transform(_PARSER.parse(text))
    except UnexpectedInput as error:
        raise _syntax_error(error, text) from None
    except VisitError as error:
        if isinstance(error.orig_exc, RuleSyntaxError):
            raise error.orig_exc from None
        raise
    except RecursionError:
        raise RuleSyntaxError(f"more than {MAX_DEPTH} nested parentheses", key="rules.error.too_deep",
                              limit=MAX_DEPTH) from None
    counter = [0]
    ast = _resolve(raw, context, counter, 0)
    check(ast, context=context)
    return ast


def _fail(pos: list[int], message: str, key: str, **params: Any) -> RuleSyntaxError:
    return RuleSyntaxError(message, line=pos[0], column=pos[1], key=key, **params)


def _resolve(node: Any, context: str, counter: list[int], depth: int) -> dict[str, Any]:
    """Raw AST → canonical AST: aliases to field names, bare booleans to comparisons, functions checked."""
    if depth > MAX_DEPTH * 2:
        raise RuleSyntaxError("the rule is nested too deeply", key="rules.error.too_deep", limit=MAX_DEPTH)
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise RuleSyntaxError(f"more than {MAX_NODES} conditions", key="rules.error.too_many", limit=MAX_NODES)
    if "or" in node or "and" in node:
        op = "or" if "or" in node else "and"
        return {op: [_resolve(child, context, counter, depth + 1) for child in node[op]]}
    if "not" in node:
        return {"not": _resolve(node["not"], context, counter, depth + 1)}
    if "bare" in node:
        item = node["bare"]
        if isinstance(item, _Call):
            call = _resolve_call(item, context)
            if FUNCTIONS[call["fn"]][0] != "bool":
                raise _fail(item.pos, f"“{item.name}(…)” is a number, not a condition: compare it, e.g. >= 1",
                            "rules.error.not_condition", name=item.name)
            return {**call, "pos": item.pos}
        name = _resolve_field(item, context)
        if FIELDS[name].type != "bool":
            raise _fail(item.pos, f"“{item.text}” is not a condition: compare it with a value",
                        "rules.error.not_condition", name=item.text)
        return {"cmp": "=", "left": {"field": name}, "right": True, "pos": item.pos}
    left = node["left"]
    if isinstance(left, _Call):
        operand = _resolve_call(left, context)
        if FUNCTIONS[operand["fn"]][0] == "bool":
            raise _fail(left.pos, f"“{left.name}(…)” is already a condition", "rules.error.not_value",
                        name=left.name)
    else:
        operand = {"field": _resolve_field(left, context)}
    right = node["right"]
    if isinstance(right, _Name) or (isinstance(right, list) and any(isinstance(v, _Name) for v in right)):
        bad = right if isinstance(right, _Name) else next(v for v in right if isinstance(v, _Name))
        raise _fail(bad.pos, f"“{bad.text}” must be in quotes", "rules.error.quote_value", value=bad.text)
    return {"cmp": node["cmp"], "left": operand, "right": right, "pos": node["pos"]}


def _resolve_field(name: _Name, context: str) -> str:
    canonical = _FIELD_ALIASES.get(name.text.lower())
    if canonical is None:
        if name.text.lower() in _FUNCTION_ALIASES:
            raise _fail(name.pos, f"“{name.text}” needs its arguments in parentheses", "rules.error.needs_args",
                        name=name.text)
        choices = [n for n, s in FIELDS.items() if s.context == "lead" or context == "touchpoint"]
        hint = suggest(name.text, choices + [a for n in choices for a in FIELDS[n].aliases])
        if hint:
            raise _fail(name.pos, f"unknown field “{name.text}” — did you mean “{hint}”?",
                        "rules.error.unknown_field_hint", name=name.text, hint=hint)
        raise _fail(name.pos, f"unknown field “{name.text}”", "rules.error.unknown_field", name=name.text)
    if FIELDS[canonical].context == "touchpoint" and context != "touchpoint":
        raise _fail(name.pos, f"“{name.text}” is a touchpoint field: only engagement rules can use it",
                    "rules.error.touchpoint_field", name=name.text)
    return canonical


def _resolve_call(call: _Call, context: str) -> dict[str, Any]:
    name = _FUNCTION_ALIASES.get(call.name.lower())
    if name is None:
        hint = suggest(call.name, list(_FUNCTION_ALIASES))
        if hint:
            raise _fail(call.pos, f"unknown function “{call.name}” — did you mean “{hint}”?",
                        "rules.error.unknown_function_hint", name=call.name, hint=hint)
        raise _fail(call.pos, f"unknown function “{call.name}”", "rules.error.unknown_function", name=call.name)
    _, kinds, _ = FUNCTIONS[name]
    args = list(call.args)
    required = [k for k in kinds if k != "window"]
    if not len(required) <= len(args) <= len(kinds):
        raise _fail(call.pos, f"“{call.name}” takes {len(kinds)} argument(s)", "rules.error.arguments",
                    name=call.name, count=len(kinds))
    out: list[Any] = []
    for kind, arg in zip(kinds, args, strict=False):
        if kind == "kind":
            value = arg.text if isinstance(arg, _Name) else arg
            if not isinstance(value, str):
                raise _fail(call.pos, "the first argument is a touchpoint kind, e.g. webinar_attended",
                            "rules.error.kind_argument", name=call.name)
            value = KIND_ALIASES.get(value.lower(), value.lower())
            if value != "*" and value not in _KINDS:
                hint = suggest(value, list(_KINDS))
                raise _fail(call.pos, f"unknown touchpoint kind “{value}”" + (f" — did you mean “{hint}”?"
                                                                             if hint else ""),
                            "rules.error.unknown_kind_hint" if hint else "rules.error.unknown_kind", kind=value,
                            hint=hint or "")
            out.append(value)
        elif kind == "window":
            if not isinstance(arg, dict) or arg.get("days", 0) < 1 or arg["days"] > 3660:
                raise _fail(call.pos, "the window is a number of days, e.g. 90d", "rules.error.window_argument",
                            name=call.name)
            out.append(arg["days"])
        else:
            if not isinstance(arg, str):
                raise _fail(call.pos, f"“{call.name}” takes a name in quotes", "rules.error.text_argument",
                            name=call.name)
            out.append(arg)
    if name == "count" and len(out) == 1:
        out.append(None)
    return {"fn": name, "args": out}


_TYPE_OPS = {
    "text": {"=", "!=", "contains", "starts_with", "ends_with", "in", "empty"},
    "number": {"=", "!=", ">", ">=", "<", "<=", "in", "empty"},
    "bool": {"=", "!="},
}


def operand_type(operand: dict[str, Any]) -> str:
    if "field" in operand:
        return FIELDS[operand["field"]].type
    return FUNCTIONS[operand["fn"]][0]


def check(ast: dict[str, Any], *, context: str = "lead") -> None:
    """Type-check a (stored or freshly parsed) AST against the registry; raises :class:`RuleSyntaxError`."""
    stack = [ast]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            raise RuleSyntaxError("malformed rule", key="rules.error.malformed")
        if "and" in node or "or" in node:
            children = node.get("and", node.get("or"))
            if not isinstance(children, list) or not children:
                raise RuleSyntaxError("malformed rule", key="rules.error.malformed")
            stack.extend(children)
            continue
        if "not" in node:
            stack.append(node["not"])
            continue
        pos = node.get("pos") or [1, 1]
        if "fn" in node:
            if node["fn"] not in FUNCTIONS or FUNCTIONS[node["fn"]][0] != "bool":
                raise _fail(pos, "malformed rule", "rules.error.malformed")
            if not (isinstance(node.get("args"), list) and len(node["args"]) == 1
                    and isinstance(node["args"][0], str)):
                raise _fail(pos, "malformed rule", "rules.error.malformed")
            continue
        _check_comparison(node, pos, context)


def _check_comparison(node: dict[str, Any], pos: list[int], context: str) -> None:
    op, operand, right = node.get("cmp"), node.get("left") or {}, node.get("right")
    if "field" in operand:
        spec = FIELDS.get(operand["field"])
        if spec is None or (spec.context == "touchpoint" and context != "touchpoint"):
            raise _fail(pos, f"unknown field “{operand.get('field')}”", "rules.error.unknown_field",
                        name=str(operand.get("field")))
    elif operand.get("fn") != "count":
        raise _fail(pos, "malformed rule", "rules.error.malformed")
    kind = operand_type(operand)
    label = operand.get("field") or operand.get("fn")
    if op not in _TYPE_OPS[kind]:
        raise _fail(pos, f"“{op}” does not apply to {kind} field “{label}”", "rules.error.operator",
                    op=op, name=label, type=kind)
    if op == "empty":
        return
    values = right if op == "in" else [right]
    if not isinstance(values, list) or not values:
        raise _fail(pos, "malformed rule", "rules.error.malformed")
    for value in values:
        ok = (isinstance(value, str) if kind == "text" else isinstance(value, bool) if kind == "bool"
              else isinstance(value, int | float) and not isinstance(value, bool))
        if not ok:
            want = {"text": "text in quotes", "number": "a number", "bool": "true or false"}[kind]
            raise _fail(pos, f"“{label}” compares with {want}, not {value!r}", f"rules.error.type_{kind}",
                        name=label, value=str(value))
        spec = FIELDS.get(operand.get("field", ""))
        if spec is not None and spec.values and op in ("=", "in") and value.lower() not in {
                v.lower() for v in spec.values}:
            hint = suggest(value, list(spec.values))
            raise _fail(pos, f"“{value}” is not a value of “{label}”" + (f" — did you mean “{hint}”?" if hint
                                                                          else ""),
                        "rules.error.unknown_value_hint" if hint else "rules.error.unknown_value", value=value,
                        name=label, hint=hint or "")


def uses_touchpoint(ast: dict[str, Any]) -> bool:
    """Whether the AST reads the touchpoint's own fields (then it is evaluated per touchpoint)."""
    stack = [ast]
    while stack:
        node = stack.pop()
        if "and" in node or "or" in node:
            stack.extend(node.get("and", node.get("or")))
        elif "not" in node:
            stack.append(node["not"])
        elif "field" in node.get("left", {}) and FIELDS[node["left"]["field"]].context == "touchpoint":
            return True
    return False
