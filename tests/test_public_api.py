"""The public surface is gathered in `migrate/__init__.py` and pinned here."""

import subprocess
import sys

import migrate


def test_exported_names_are_pinned():
    assert sorted(migrate.__all__) == sorted([
        "ArgumentError", "BatchInterrupted", "BatchReport", "CheckpointError", "ConversionOptions",
        "ConversionPlan", "ConversionReport", "LegacyCheckpoint", "MappingTable", "MigrateError",
        "ModelError", "OutputError", "PlanError", "PortReport", "Problem", "RestoreReport", "Role",
        "RoleSource", "Rule", "SourceVariable", "SuggestReport", "TableError", "VerificationError",
        "VerifyReport", "VerifySettings", "convert", "convert_batch", "inspect", "plan", "port",
        "restore", "suggest", "verify",
    ])
    for name in migrate.__all__:
        assert getattr(migrate, name) is not None


def test_importing_migrate_does_not_import_tensorflow():
    code = "import sys, migrate, migrate.mapping.table, migrate.mapping.lint; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
