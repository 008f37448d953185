"""Details a new user trips over: inspect's columns, side outputs checked first, EMA without shadows."""

import os

import pytest

import migrate
from migrate import zoo
from migrate.output import atomic
from migrate.output.report import inspect_summary

ENTRY = zoo.get("small_convnet")


def _variable(name, shape):
    return {"name": name, "shape": shape, "dtype": "float32", "bytes": 4,
            "role": "trainable", "role_source": "graph collection"}


def test_inspect_columns_stay_aligned_with_long_names():
    long_name = ("bert/encoder/layer_11/attention/output/LayerNorm/beta/adam_v/"
                 "ExponentialMovingAverage")
    assert len(long_name) > 60
    text = inspect_summary({
        "checkpoint": "m.ckpt-1", "format": "V2", "role_origin": "graph collections of m.meta",
        "roles": {"trainable": {"count": 2, "bytes": 8}},
        "variables": [_variable(long_name, [768]), _variable("w", [3, 3, 64, 64])]})
    lines = text.splitlines()
    assert lines[0] == "m.ckpt-1 (V2 checkpoint; roles from graph collections of m.meta)"
    rows = lines[1:4]
    # Every column starts at the same place on every row.
    for column in ("shape", "dtype", "role"):
        header_at = rows[0].index(column)
        assert rows[1][header_at - 2:header_at] == "  " and rows[1][header_at] != " "
    assert rows[2].index("[3, 3, 64, 64]") == rows[1].index("[768]") == rows[0].index("shape")
    assert rows[2].index("trainable") == rows[1].index("trainable")


def test_report_path_is_checked_before_anything_is_written(tmp_path):
    with pytest.raises(migrate.OutputError, match="the directory /no/such/dir does not exist") \
            as raised:
        atomic.check_file_destination("/no/such/dir/r.json", option="report")
    assert raised.value.option == "report" and "--" not in str(raised.value)
    with pytest.raises(migrate.OutputError, match="it is a directory"):
        atomic.check_file_destination(str(tmp_path), option="report")
    atomic.check_file_destination(str(tmp_path / "r.json"), option="report")
    assert os.listdir(tmp_path) == []


def test_ema_without_shadows_warns(legacy_checkpoint, tmp_path):
    checkpoint = migrate.LegacyCheckpoint.open(legacy_checkpoint("small_convnet"))
    without_shadows = migrate.LegacyCheckpoint(
        checkpoint.prefix, {name: variable for name, variable in checkpoint.variables.items()
                            if variable.role is not migrate.Role.EMA_SHADOW})
    report = migrate.convert(without_shadows, ENTRY.table_path, ENTRY.build_model,
                             str(tmp_path / "out"), dry_run=True,
                             options=migrate.ConversionOptions(ema=True))
    assert report.ema_swapped == 0
    assert any("no ExponentialMovingAverage shadow of any kept variable" in note
               for note in report.warnings)
    with_shadows = migrate.convert(checkpoint, ENTRY.table_path, ENTRY.build_model,
                                   str(tmp_path / "out"), dry_run=True,
                                   options=migrate.ConversionOptions(ema=True))
    assert with_shadows.ema_swapped == 5
    assert not any("EMA" in note for note in with_shadows.warnings)
