"""The state shared by the seed's generators: random source, clock, ids and the tables built so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from pypinyin import Style, lazy_pinyin

from seed.timeline import Timeline

# Surname readings that differ from the character's everyday reading.
_SURNAME_PINYIN = {"曾": "zeng", "单": "shan", "覃": "qin", "区": "ou", "解": "xie", "仇": "qiu", "查": "zha",
                   "乐": "yue", "盖": "ge", "翟": "zhai", "缪": "miao", "朴": "piao"}


@lru_cache(maxsize=4096)
def char_pinyin(char: str) -> str:
    return "".join(lazy_pinyin(char, style=Style.NORMAL, errors="ignore"))


def pinyin(text: str, *, surname: bool = False) -> str:
    """Toneless pinyin of ``text`` without separators; ``surname`` uses surname readings."""
    if surname:
        if text in _SURNAME_PINYIN:
            return _SURNAME_PINYIN[text]
    return "".join(char_pinyin(c) for c in text)


@dataclass
class World:
    rng: np.random.Generator
    timeline: Timeline
    n_leads: int
    seed: int
    # Insertion order is dependency order; each value maps column name → sequence.
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: pd.DataFrame | None = None
    campaigns: pd.DataFrame | None = None
    tracking_links: pd.DataFrame | None = None
    accounts: pd.DataFrame | None = None
    leads: pd.DataFrame | None = None
    touchpoints: pd.DataFrame | None = None
    assignments: pd.DataFrame | None = None
    stage_changes: pd.DataFrame | None = None
    opportunities: dict[str, Any] | None = None
    extra_touchpoints: list[pd.DataFrame] = field(default_factory=list)
    fan_groups: dict[int, tuple[str, int]] = field(default_factory=dict)
    group_ids: dict[str, int] = field(default_factory=dict)
    tag_ids: dict[str, int] = field(default_factory=dict)
    rule_ids: dict[str, int] = field(default_factory=dict)

    @property
    def now(self) -> int:
        return self.timeline.now

    def add(self, table: str, columns: dict[str, Any]) -> None:
        if table in self.tables:
            existing = self.tables[table]
            for name, values in columns.items():
                existing[name] = list(existing[name]) + list(values)
        else:
            self.tables[table] = columns

    def weighted(self, weights: np.ndarray | list[float], size: int) -> np.ndarray:
        """Indices drawn with the given relative weights."""
        p = np.asarray(weights, dtype=np.float64)
        return self.rng.choice(len(p), size=size, p=p / p.sum())

    def chance(self, p: float | np.ndarray, size: int | None = None) -> np.ndarray:
        n = size if size is not None else len(np.atleast_1d(p))
        return self.rng.random(n) < p
