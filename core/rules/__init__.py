"""The rule language marketers write: grammar, AST, type check, SQL compiler and Python predicate, and the rules
as stored, versioned data.

``core.rules.parse(text)`` → AST (raises ``RuleSyntaxError`` with ``line``/``column``/``message``);
``to_sql(ast, now=…)`` and ``predicate(ast, now=…)`` evaluate it in the database or on one lead's facts.
"""

from core.rules.compile import fold, lead_facts, predicate, to_sql, touchpoint_facts
from core.rules.language import (
    FIELDS,
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LITERAL,
    MAX_TEXT,
    RuleSyntaxError,
    check,
    parse,
    suggest,
    uses_touchpoint,
)
from core.rules.store import (
    Preview,
    context_of,
    lead_condition,
    list_rules,
    matching_lead_ids,
    preview,
    restore_version,
    rule_ast,
    rule_versions,
    save_rule,
    set_active,
)

__all__ = [
    "FIELDS", "FUNCTIONS", "MAX_DEPTH", "MAX_LITERAL", "MAX_TEXT", "Preview", "RuleSyntaxError", "check",
    "context_of", "fold", "lead_condition", "lead_facts", "list_rules", "matching_lead_ids", "parse", "predicate",
    "preview", "restore_version", "rule_ast", "rule_versions", "save_rule", "set_active", "suggest", "to_sql",
    "touchpoint_facts", "uses_touchpoint",
]
