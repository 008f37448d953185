"""Drafting a mapping table from a checkpoint and a model: `migrate.suggest`'s engine."""

from migrate.suggest.report import SuggestReport
from migrate.suggest.run import suggest

__all__ = ["SuggestReport", "suggest"]
