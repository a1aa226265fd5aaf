"""Seed 100,000 demo leads (about a million touchpoints) into a temporary SQLite file and time it.

    python -m bench.seed_bench [--leads N] [--target SECONDS]

Prints the rows per table and, last, ``PASS seed 100000 leads in X s (target < 60 s)`` or ``FAIL …``; the exit code
is 0 only on PASS.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from db.engine import make_engine
from seed.demo import generate, seed_demo

NOW = "2026-11-23T10:00:00+08:00"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seed_bench")
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--target", type=float, default=60.0, help="seconds")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="leadloop-seed-bench-") as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        try:
            started, cpu_started = time.perf_counter(), time.process_time()
            counts = seed_demo(engine, leads=args.leads, seed=42, now=NOW)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        finally:
            engine.dispose()
    # Generation alone (no database), to show where the time goes.
    generation_started = time.perf_counter()
    generate(leads=args.leads, seed=42, now=NOW)
    generation = time.perf_counter() - generation_started

    width = max(len(name) for name in counts)
    for name, count in sorted(counts.items(), key=lambda item: -item[1]):
        print(f"{name:<{width}}  {count:>10,}")
    print(f"{'total rows':<{width}}  {sum(counts.values()):>10,}")
    print(f"generation alone: {generation:.1f} s; database load: {max(0.0, elapsed - generation):.1f} s; "
          f"CPU time of this process: {cpu:.1f} s (more wall time than that means the machine was busy)")
    verdict = "PASS" if elapsed < args.target else "FAIL"
    print(f"{verdict} seed {args.leads} leads in {elapsed:.1f} s (target < {args.target:g} s)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
