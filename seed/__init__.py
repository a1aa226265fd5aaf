"""Deterministic demo data: ``python -m seed`` (see ``seed.demo``)."""

from seed.demo import SeedRefused, autoseed, database_is_empty, generate, reset_database, seed_demo

__all__ = ["SeedRefused", "autoseed", "database_is_empty", "generate", "reset_database", "seed_demo"]
