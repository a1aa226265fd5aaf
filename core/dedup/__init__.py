"""Duplicate detection and merging: the engine over any DataFrame, the review queue, merge and unmerge,
invalid-lead cleanup."""

from core.dedup.engine import LEAD_FIELDS, clusters, compare_records, find_duplicates
from core.dedup.invalid import count_invalid, delete_invalid, list_invalid, restore_invalid
from core.dedup.kinds import KINDS
from core.dedup.merge import lead_merges, merge, unmerge
from core.dedup.queue import (
    bulk_merge,
    check_new_leads,
    count_candidates,
    list_candidates,
    mark_not_duplicate,
    merge_candidate,
    pair_detail,
    scan_all,
    skip,
)
from core.dedup.thresholds import check_thresholds, preview_thresholds, save_thresholds, thresholds

__all__ = [
    "KINDS", "LEAD_FIELDS", "bulk_merge", "check_new_leads", "check_thresholds", "clusters", "compare_records",
    "count_candidates", "count_invalid", "delete_invalid", "find_duplicates", "lead_merges", "list_candidates",
    "list_invalid", "mark_not_duplicate", "merge", "merge_candidate", "pair_detail", "preview_thresholds",
    "restore_invalid", "save_thresholds", "scan_all", "skip", "thresholds", "unmerge",
]
