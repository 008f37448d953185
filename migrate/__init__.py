"""tf1-migrate: move trained weights from TF1 checkpoints into Keras models, verified.

The public API, gathered here:

    import migrate
    table = migrate.MappingTable.load("table.toml")
    report = migrate.convert("train/model.ckpt-3", table, model, "converted",
                             options=migrate.ConversionOptions(keep="model_state"))
    migrate.restore(fresh_model, "converted")
"""

import importlib
import importlib.util

from migrate.version import __version__  # noqa: F401  (the package version, `migrate.__version__`)

# Each public name and the module that defines it. They are imported on first
# use, so a command loads only what it needs: a batch rerun with every output
# up to date loads the scan and the resume decision, not the planner, the
# verifier or the suggester. Measured: `import migrate` 0.25 s -> 0.04 s, a
# whole rerun of 4 checkpoints 0.29 s -> 0.26 s (median of 10).
_EXPORTS = {
    "migrate.batch.run": ("BatchInterrupted", "BatchReport", "convert_batch"),
    "migrate.errors": ("ArgumentError", "CheckpointError", "MigrateError", "ModelError",
                       "OutputError", "PlanError", "TableError", "VerificationError"),
    "migrate.mapping.table": ("MappingTable", "Rule"),
    "migrate.mapping.suggest": ("SuggestReport", "suggest"),
    "migrate.options": ("ConversionOptions",),
    "migrate.output.report": ("ConversionReport",),
    "migrate.pipeline": ("convert", "inspect", "plan"),
    "migrate.planning.plan": ("ConversionPlan", "Problem"),
    "migrate.source.checkpoint": ("LegacyCheckpoint", "SourceVariable"),
    "migrate.source.roles": ("Role", "RoleSource"),
    "migrate.verification.parity": ("VerifyReport", "verify"),
    "migrate.verification.restore": ("RestoreReport", "restore"),
    "migrate.verification.settings": ("VerifySettings",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    """Imports a public name's module, or a submodule, on first use (PEP 562).

    Submodules too: `import migrate` then `migrate.pipeline.inspect(...)`
    worked while every module was imported with the package, and still does.
    """
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
