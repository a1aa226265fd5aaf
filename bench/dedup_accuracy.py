"""Dedup accuracy on labelled data: precision of automatic merges and recall of automatic + review.

    python -m bench.dedup_accuracy [--people N] [--seeds 1,2,3]

Builds labelled lead sets with ``bench.dedup_data`` (the same person written many ways, with ground truth), runs
``core.dedup.find_duplicates`` with the default thresholds of the ``dedup`` setting and reports, per seed and
overall (the worst seed counts), precision for automatic merges (target ≥ 0.98) and recall for automatic + review
(target ≥ 0.95). Both are counted over clusters, as the product acts (merging A=B and B=C merges A and C); the plain
pairwise figures are printed too. Last line: ``PASS …`` or ``FAIL …``.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.dedup_data import evaluate, labelled_leads
from core.dedup import find_duplicates
from core.settings import DEFAULTS

PRECISION_TARGET = 0.98
RECALL_TARGET = 0.95


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dedup_accuracy")
    parser.add_argument("--people", type=int, default=6000)
    parser.add_argument("--seeds", default="2027,2028,2029")
    args = parser.parse_args(argv)
    auto, review = DEFAULTS["dedup"]["auto_merge"], DEFAULTS["dedup"]["review"]
    worst_precision, worst_recall = 1.0, 1.0
    for seed in (int(s) for s in args.seeds.split(",")):
        frame = labelled_leads(args.people, seed=seed)
        started = time.perf_counter()
        pairs = find_duplicates(frame.drop(columns="entity"), min_score=review)
        elapsed = time.perf_counter() - started
        f = evaluate(frame, pairs, auto=auto, review=review)
        print(f"seed {seed}: {int(f['records']):,} records, {int(f['true_pairs']):,} true pairs, "
              f"{int(f['auto_pairs']):,} automatic, {int(f['review_pairs']):,} for review ({elapsed:.1f} s)")
        print(f"  precision of automatic merges {f['precision_auto']:.4f} (pairwise {f['pairwise_precision_auto']:.4f}); "
              f"recall automatic + review {f['recall_total']:.4f} (pairwise {f['pairwise_recall_total']:.4f}); "
              f"recall automatic alone {f['recall_auto']:.4f}; precision of the review queue {f['precision_review']:.4f}")
        worst_precision = min(worst_precision, f["precision_auto"])
        worst_recall = min(worst_recall, f["recall_total"])
    ok = worst_precision >= PRECISION_TARGET and worst_recall >= RECALL_TARGET
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict} dedup precision (automatic) {worst_precision:.4f} (target >= {PRECISION_TARGET}), "
          f"recall (automatic + review) {worst_recall:.4f} (target >= {RECALL_TARGET})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
