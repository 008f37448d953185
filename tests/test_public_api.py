"""The public surface is gathered in `migrate/__init__.py` and pinned here."""

import subprocess
import sys

import migrate


def test_exported_names_are_pinned():
    assert sorted(migrate.__all__) == sorted([
        "ArgumentError", "BatchInterrupted", "BatchReport", "CheckpointError", "ConversionOptions",
        "ConversionPlan", "ConversionReport", "LegacyCheckpoint", "MappingTable", "MigrateError",
        "ModelError", "OutputError", "PlanError", "Problem", "RestoreReport", "Role", "RoleSource",
        "Rule", "SourceVariable", "SuggestReport", "TableError", "VerificationError",
        "VerifyReport", "VerifySettings", "convert", "convert_batch", "inspect", "plan", "restore",
        "suggest", "verify",
    ])
    for name in migrate.__all__:
        assert getattr(migrate, name) is not None


def test_importing_migrate_does_not_import_tensorflow():
    code = "import sys, migrate, migrate.mapping.table, migrate.mapping.lint; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_public_names_and_submodules_are_imported_on_first_use():
    # `import migrate` loads no module of the API until a name is used, and
    # `migrate.pipeline` (a submodule, not imported by name) still resolves.
    code = ("import sys, migrate\n"
            "assert 'migrate.pipeline' not in sys.modules and 'numpy' not in sys.modules\n"
            "assert migrate.pipeline.inspect is migrate.inspect\n"
            "assert set(migrate.__all__) <= set(dir(migrate))\n"
            "assert not hasattr(migrate, 'no_such_name')\n")
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
