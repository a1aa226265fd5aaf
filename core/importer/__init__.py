"""Channel import: read a file, map its columns, normalize, validate and upsert one batch; undo a batch.

``read_file`` (reading) → ``suggest_mapping`` (mapping) → ``build_plan`` (plan: normalize, validate, group, match)
→ ``run_import`` / ``preview`` / ``undo_batch`` (run). ``list_batches`` lists past batches.
"""

from __future__ import annotations

from core.importer.batches import BATCH_COLUMNS, list_batches
from core.importer.mapping import FIELDS, IGNORE, SYNONYMS, suggest_mapping
from core.importer.reading import RawTable, read_file
from core.importer.run import (
    ImportPreview,
    ImportSummary,
    content_hash,
    max_upload_bytes,
    preview,
    problem_report,
    problem_report_csv,
    run_import,
    undo_batch,
    undo_blockers,
)

__all__ = [
    "BATCH_COLUMNS", "FIELDS", "IGNORE", "SYNONYMS", "ImportPreview", "ImportSummary", "RawTable", "content_hash",
    "list_batches", "max_upload_bytes", "preview", "problem_report", "problem_report_csv", "read_file",
    "run_import", "suggest_mapping", "undo_batch", "undo_blockers",
]
