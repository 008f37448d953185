"""tf1-migrate: move trained weights from TF1 checkpoints into Keras models, verified.

The public API, gathered here:

    import migrate
    table = migrate.MappingTable.load("table.toml")
    report = migrate.convert("train/model.ckpt-3", table, model, "converted")
    migrate.restore(fresh_model, "converted")
"""

__version__ = "0.1.0"

from migrate.batch import BatchReport
from migrate.batch import convert_batch
from migrate.conversion import convert
from migrate.conversion import inspect
from migrate.conversion import plan
from migrate.errors import CheckpointError
from migrate.errors import MigrateError
from migrate.errors import ModelError
from migrate.errors import OutputError
from migrate.errors import PlanError
from migrate.errors import TableError
from migrate.errors import VerificationError
from migrate.legacy_checkpoint import LegacyCheckpoint
from migrate.legacy_checkpoint import SourceVariable
from migrate.plan import ConversionPlan
from migrate.plan import Problem
from migrate.report import ConversionReport
from migrate.restore import RestoreReport
from migrate.restore import restore
from migrate.roles import Role
from migrate.roles import RoleSource
from migrate.table import MappingTable
from migrate.table import Rule
from migrate.verify import VerifyReport
from migrate.verify import verify

__all__ = [
    "BatchReport", "CheckpointError", "ConversionPlan", "ConversionReport", "LegacyCheckpoint",
    "MappingTable", "MigrateError", "ModelError", "OutputError", "PlanError", "Problem",
    "RestoreReport", "Role", "RoleSource", "Rule", "SourceVariable", "TableError",
    "VerificationError", "VerifyReport", "convert", "convert_batch", "inspect", "plan", "restore",
    "verify",
]
