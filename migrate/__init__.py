"""tf1-migrate: move trained weights from TF1 checkpoints into Keras models, verified.

The public API, gathered here:

    import migrate
    table = migrate.MappingTable.load("table.toml")
    report = migrate.convert("train/model.ckpt-3", table, model, "converted",
                             options=migrate.ConversionOptions(keep="model_state"))
    migrate.restore(fresh_model, "converted")
    migrate.port("model_dir", "ported")   # a canned Estimator: ported/model.py and its weights
"""

from migrate.version import __version__  # noqa: F401  (the package version, `migrate.__version__`)

from migrate.batch.run import BatchInterrupted
from migrate.batch.run import BatchReport
from migrate.batch.run import convert_batch
from migrate.estimator import PortReport
from migrate.estimator import port
from migrate.errors import ArgumentError
from migrate.errors import CheckpointError
from migrate.errors import MigrateError
from migrate.errors import ModelError
from migrate.errors import OutputError
from migrate.errors import PlanError
from migrate.errors import TableError
from migrate.errors import VerificationError
from migrate.mapping.table import MappingTable
from migrate.mapping.table import Rule
from migrate.suggest import SuggestReport
from migrate.suggest import suggest
from migrate.options import ConversionOptions
from migrate.output.report import ConversionReport
from migrate.pipeline import convert
from migrate.pipeline import inspect
from migrate.pipeline import plan
from migrate.planning.plan import ConversionPlan
from migrate.planning.plan import Problem
from migrate.source.checkpoint import LegacyCheckpoint
from migrate.source.checkpoint import SourceVariable
from migrate.source.roles import Role
from migrate.source.roles import RoleSource
from migrate.verification.parity import VerifyReport
from migrate.pipeline import verify
from migrate.verification.restore import RestoreReport
from migrate.verification.restore import restore
from migrate.verify_settings import VerifySettings

__all__ = [
    "ArgumentError", "BatchInterrupted", "BatchReport", "CheckpointError", "ConversionOptions",
    "ConversionPlan", "ConversionReport", "LegacyCheckpoint", "MappingTable", "MigrateError",
    "ModelError", "OutputError", "PlanError", "PortReport", "Problem", "RestoreReport", "Role",
    "RoleSource", "Rule", "SourceVariable", "SuggestReport", "TableError", "VerificationError",
    "VerifyReport", "VerifySettings", "convert", "convert_batch", "inspect", "plan", "port",
    "restore", "suggest", "verify",
]
