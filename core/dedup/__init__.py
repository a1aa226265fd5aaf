"""Duplicate detection and merging."""

from core.dedup.engine import LEAD_FIELDS, clusters, compare_records, find_duplicates
from core.dedup.kinds import KINDS
from core.dedup.queue import count_candidates, list_candidates

__all__ = ["KINDS", "LEAD_FIELDS", "clusters", "compare_records", "count_candidates", "find_duplicates",
           "list_candidates"]
