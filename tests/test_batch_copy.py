"""Copy plans: a batch plans once per source layout and its workers convert without TensorFlow.

The output of a copy plan must be byte for byte the checkpoint the TensorFlow
path writes (stored copies, NumPy transforms, EMA, BatchNorm statistics), with
the same manifest; a copy worker must convert with TensorFlow and Keras
unimportable.
"""

import dataclasses
import json
import os
import shutil
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import migrate
from migrate import pipeline
from migrate import zoo
from migrate.zoo import small_convnet
from migrate.batch import copy_plan
from migrate.batch import jobs as batch_jobs
from migrate.batch import pool as batch_pool
from migrate.batch import stored_plans
from migrate.mapping.table import MappingTable
from migrate.mapping.table import load_table
from migrate.output import bundle
from migrate.output import manifest as manifest_lib
from migrate.planning import target as target_model
from migrate.source import bundle_index

ENTRY = zoo.get("small_convnet")
MODEL = "migrate.zoo.small_convnet:build_model"
# Every way a copy plan writes a weight: stored bytes copied (reshapes only),
# a transpose and a slice through NumPy.
TRANSFORMING_TABLE = """
[[rule]]
match = 'dense/kernel'
target = 'dense/kernel'
transform = ["transpose(1, 0)"]

[[rule]]
match = 'dense/bias'
target = 'dense/bias'
transform = ["squeeze(0)"]

[[rule]]
match = 'head/kernel'
target = 'head/kernel'
transform = ["slice(0, 1, 6)", "expand_dims(1)"]

[[rule]]
match = 'head/bias'
target = 'head/bias'
"""
# A copy worker must never need these.
_UNIMPORTABLE = ("tensorflow", "keras", "tf_keras")


@pytest.fixture(scope="module")
def prefix(legacy_checkpoint):
    return legacy_checkpoint("small_convnet")


def _transforming_model():
    inputs = keras.Input((24,))
    hidden = keras.layers.Dense(5, name="dense")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))


def _transforming_checkpoint(directory, seed):
    rng = np.random.default_rng(seed)
    tensors = {"dense/kernel": rng.standard_normal((5, 24)).astype("float32"),
               "dense/bias": rng.standard_normal((1, 5)).astype("float32"),
               "head/kernel": rng.standard_normal((7,)).astype("float32"),
               "head/bias": rng.standard_normal((1,)).astype("float32")}
    prefix = str(directory / f"model.ckpt-{seed}")
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[name]) for name in names])
    return prefix


def _copy_checkpoint(prefix, destination):
    """Copies a checkpoint's files under another prefix (the same layout, another step)."""
    directory, base = os.path.split(prefix)
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    for name in os.listdir(directory):
        if name.startswith(base + "."):
            shutil.copyfile(os.path.join(directory, name), destination + name[len(base):])
    return destination


def _files(output):
    return {name: open(os.path.join(output, name), "rb").read()
            for name in sorted(os.listdir(output)) if name != manifest_lib.MANIFEST_NAME}


def _manifest(output):
    document = json.load(open(os.path.join(output, manifest_lib.MANIFEST_NAME)))
    del document["created"]
    return document


def _both_paths(prefix, table, model, tmp_path, options):
    """Converts `prefix` as a batch worker does (TensorFlow, the model as template) and by a
    copy plan made from it; returns `(tensorflow output, copy output, tensorflow report,
    copy report)`."""
    checkpoint = pipeline.open_checkpoint(prefix, options)
    loaded = load_table(table)
    expected = str(tmp_path / "tensorflow")
    expected_report = pipeline.convert(checkpoint, loaded, model, expected, options=options,
                                       model_name=MODEL, fill_model=False)
    plan = copy_plan.CopyPlan.from_text(copy_plan.make(
        checkpoint, loaded, model, options=options, model_name=MODEL).to_text(), loaded)
    copied = str(tmp_path / "copied")
    report = copy_plan.execute(plan, prefix, copied, options=options)
    return expected, copied, expected_report, report


@pytest.mark.parametrize("options", [
    migrate.ConversionOptions(),
    migrate.ConversionOptions(keep="model_state", ema=True),
], ids=["trainable", "model_state_ema"])
def test_a_copy_plan_writes_byte_for_byte_what_the_tensorflow_path_writes(prefix, tmp_path,
                                                                          options):
    expected, copied, expected_report, report = _both_paths(
        prefix, ENTRY.table_path, ENTRY.build_model(), tmp_path, options)
    assert _files(copied) == _files(expected)
    assert _manifest(copied) == _manifest(expected)
    assert manifest_lib.check(copied).ok
    document, expected_document = report.to_json(), expected_report.to_json()
    for per_run in ("seconds", "output"):
        del document[per_run], expected_document[per_run]
    assert document == expected_document
    if options.keep == "trainable":  # The BatchNorm statistics are left out, and said so.
        assert report.unwritten_targets and report.warnings == expected_report.warnings


def test_numpy_transforms_in_a_copy_plan_give_the_tensorflow_paths_bytes(tmp_path):
    prefix = _transforming_checkpoint(tmp_path, seed=1)
    table = MappingTable.from_text(TRANSFORMING_TABLE, origin="transforming.toml")
    options = migrate.ConversionOptions()
    checkpoint = pipeline.open_checkpoint(prefix, options)
    plan = copy_plan.make(checkpoint, table, _transforming_model(), options=options,
                          model_name=MODEL)
    assert [bool(step.assignment) for step in plan.steps].count(True) == 2
    expected, copied, _, _ = _both_paths(prefix, table, _transforming_model(), tmp_path, options)
    assert _files(copied) == _files(expected)
    assert _manifest(copied) == _manifest(expected)
    # Another checkpoint of the layout: its own values, through the same plan.
    other = _transforming_checkpoint(tmp_path, seed=2)
    copy_plan.execute(plan, other, str(tmp_path / "other"), options=options)
    restored = tf.train.load_checkpoint(str(tmp_path / "other" / "ckpt"))
    legacy = tf.train.load_checkpoint(other)
    (kernel,) = [key for key, shape in restored.get_variable_to_shape_map().items()
                 if shape == [24, 5]]
    np.testing.assert_array_equal(restored.get_tensor(kernel), legacy.get_tensor("dense/kernel").T)


def test_a_checkpoint_of_another_layout_or_damaged_bytes_fail_with_their_own_line(prefix,
                                                                                  tmp_path):
    options = migrate.ConversionOptions()
    plan = copy_plan.make(pipeline.open_checkpoint(prefix, options),
                          load_table(ENTRY.table_path), ENTRY.build_model(),
                          options=options, model_name=MODEL)
    other = _transforming_checkpoint(tmp_path, seed=3)
    with pytest.raises(migrate.CheckpointError, match="is not of the layout the batch planned"):
        copy_plan.execute(plan, other, str(tmp_path / "other"), options=options)
    damaged = _copy_checkpoint(prefix, str(tmp_path / "damaged" / "model.ckpt-9"))
    entries = bundle_index.read_layout(open(damaged + ".index", "rb").read())
    kernel = entries["logits/kernel"]
    data_path = damaged + bundle.DATA_SUFFIX
    data = bytearray(open(data_path, "rb").read())
    data[kernel.offset + kernel.size // 2] ^= 0xFF
    open(data_path, "wb").write(bytes(data))
    with pytest.raises(migrate.CheckpointError, match="Checksum does not match"):
        copy_plan.execute(plan, damaged, str(tmp_path / "damaged-out"), options=options)
    assert not os.path.exists(tmp_path / "damaged-out")


def test_copy_workers_convert_with_tensorflow_and_keras_unimportable(prefix, tmp_path,
                                                                     monkeypatch):
    options = migrate.ConversionOptions()
    table_text = open(ENTRY.table_path, encoding="utf-8").read()
    table = MappingTable.from_text(table_text, origin=ENTRY.table_path)
    settings = batch_jobs.BatchSettings(table=ENTRY.table_path, table_text=table_text,
                                          table_sha256=table.sha256, model=MODEL,
                                          check_current=False)
    checkpoint = pipeline.open_checkpoint(prefix, options)
    plan = copy_plan.make(checkpoint, table, ENTRY.build_model(), options=options,
                          model_name=MODEL)
    expected = str(tmp_path / "tensorflow")
    pipeline.convert(checkpoint, table, ENTRY.build_model(), expected, options=options,
                     model_name=MODEL, fill_model=False)
    sources = [_copy_checkpoint(prefix, str(tmp_path / "train" / f"model.ckpt-{step}"))
               for step in (1, 2)]
    jobs = []
    for step, source in enumerate(sources, 1):
        layout, _ = copy_plan.source_layout(source, use_meta=True)
        assert layout == plan.layout
        jobs.append(batch_jobs.Job(source=source, relative=f"model.ckpt-{step}",
                                     output=str(tmp_path / "out" / f"model.ckpt-{step}"),
                                     layout=layout))
    # The workers import these from a directory put first on their path, where importing
    # any of them fails.
    blocked = tmp_path / "blocked"
    for name in _UNIMPORTABLE:
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(
            f"raise ImportError('a copy worker imported {name}')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(blocked), *sys.path[:1], os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(blocked))
    results = batch_pool.run_pool(jobs, settings, workers=2,
                                    plans={plan.layout: plan.to_text()})
    assert [(result.relative, result.status, result.reason) for result in sorted(
        results, key=lambda result: result.relative)] == [
        ("model.ckpt-1", "converted", ""), ("model.ckpt-2", "converted", "")]
    for job in jobs:
        assert _files(job.output) == _files(expected)
        assert manifest_lib.check(job.output).ok


def test_stored_plans_are_used_only_whole_and_for_the_same_settings(prefix, tmp_path):
    options = migrate.ConversionOptions()
    table_text = open(ENTRY.table_path, encoding="utf-8").read()
    table = MappingTable.from_text(table_text, origin=ENTRY.table_path)
    settings = batch_jobs.BatchSettings(table=ENTRY.table_path, table_text=table_text,
                                        table_sha256=table.sha256, model=MODEL)
    text = copy_plan.make(pipeline.open_checkpoint(prefix, options), table, ENTRY.build_model(),
                          options=options, model_name=MODEL).to_text()
    layout = copy_plan.CopyPlan.layout_of(text)
    output = str(tmp_path / "converted")
    stored_plans.open_store(output, settings, table).put(layout, text)

    # Every layout stored: nothing is planned, no worker is started.
    job = batch_jobs.Job(source=prefix, relative="model.ckpt", output=f"{output}/model.ckpt")
    store = stored_plans.open_store(output, settings, table)
    plans, jobs, ready = batch_pool.plan_copies([job], settings, store=store, copy_ahead=1)
    assert (plans, [job.layout for job in jobs], ready, store.notes) == (
        {layout: text}, [layout], [], [])
    # Read back, it writes what the TensorFlow path writes, byte for byte.
    expected = str(tmp_path / "tensorflow")
    pipeline.convert(pipeline.open_checkpoint(prefix, options), table, ENTRY.build_model(),
                     expected, options=options, model_name=MODEL, fill_model=False)
    copy_plan.execute(copy_plan.CopyPlan.from_text(store.get(layout), table), prefix,
                      job.output, options=options)
    assert _files(job.output) == _files(expected)
    assert _manifest(job.output) == _manifest(expected)
    # Other options, or a forced batch: not used (another file; forced plans anew).
    other = dataclasses.replace(settings, options=migrate.ConversionOptions(keep="model_state"))
    forced = dataclasses.replace(settings, force=True)
    for changed in (other, forced):
        store = stored_plans.open_store(output, changed, table)
        assert store.get(layout) is None and store.notes == []
    # Damaged (cut short, or another plan under its name): planned anew, with a note.
    path = stored_plans.open_store(output, settings, table).path(layout)
    whole = open(path, "rb").read()
    document = json.loads(whole)
    document["plan"] = document["plan"].replace(layout, "0" * len(layout))
    for damaged in (whole[:len(whole) // 2], json.dumps(document).encode()):
        open(path, "wb").write(damaged)
        store = stored_plans.open_store(output, settings, table)
        assert store.get(layout) is None
        assert [note["note"].split(" (")[0] for note in store.notes] == [
            "stored copy plan cannot be used"]
        assert store.notes[0]["path"] == f"batch_plans/{os.path.basename(path)}"


def _partials(directory):
    return [name for name in os.listdir(directory) if ".partial-" in name]


@pytest.mark.parametrize("options", [
    migrate.ConversionOptions(),
    migrate.ConversionOptions(keep="model_state"),
], ids=["trainable", "model_state"])
def test_copied_ahead_of_its_plan_a_checkpoint_ends_byte_for_byte_as_the_plan_writes_it(
        prefix, tmp_path, options):
    table = load_table(ENTRY.table_path)
    plan = copy_plan.CopyPlan.from_text(copy_plan.make(
        pipeline.open_checkpoint(prefix, options), table, ENTRY.build_model(), options=options,
        model_name=MODEL).to_text(), table)
    _, entries = copy_plan.source_layout(prefix, use_meta=True)
    # Told from the .index and the table alone: the plan's copies, in its order.
    planned = [output.source for step in plan.steps for output in step.outputs]
    assert copy_plan.staged_sources(entries, table, options) == planned
    staged, reason = copy_plan.stage(prefix, str(tmp_path / "ahead"), table=table,
                                     options=options)
    assert reason == "" and staged.sources == tuple(planned) and staged.matches(plan)
    # Waiting for the plan: only the temporary directory exists.
    assert os.listdir(tmp_path) == _partials(tmp_path) != []
    report = staged.finish(plan, options=options)
    expected = copy_plan.execute(plan, prefix, str(tmp_path / "executed"), options=options)
    assert _files(tmp_path / "ahead") == _files(tmp_path / "executed")
    assert _manifest(tmp_path / "ahead") == _manifest(tmp_path / "executed")
    assert manifest_lib.check(str(tmp_path / "ahead")).ok
    assert report.seconds > 0 and report.written_weights == expected.written_weights
    assert _partials(tmp_path) == []


def test_what_a_plan_would_not_copy_as_stored_is_not_copied_ahead(prefix, tmp_path):
    # A transpose: predicted from the table, nothing is written.
    transforming = _transforming_checkpoint(tmp_path, seed=4)
    table = MappingTable.from_text(TRANSFORMING_TABLE, origin="transforming.toml")
    staged, reason = copy_plan.stage(transforming, str(tmp_path / "out"), table=table,
                                     options=migrate.ConversionOptions())
    assert staged is None and reason == "the plan is not expected to copy every weight as stored"
    # EMA shadows are read in place of the weights: not told from names.
    _, entries = copy_plan.source_layout(prefix, use_meta=True)
    assert copy_plan.staged_sources(entries, load_table(ENTRY.table_path),
                                    migrate.ConversionOptions(ema=True)) is None
    # Copied ahead for one plan, then another comes: dropped, nothing left behind.
    table = load_table(ENTRY.table_path)
    options = migrate.ConversionOptions()
    other_plan = copy_plan.make(pipeline.open_checkpoint(prefix, options), table,
                                ENTRY.build_model(), options=options, model_name=MODEL)
    staged, _ = copy_plan.stage(prefix, str(tmp_path / "out"), table=table,
                                options=migrate.ConversionOptions(keep="model_state"))
    assert not staged.matches(other_plan)
    with pytest.raises(ValueError, match="Expected the plan the copies were staged for"):
        staged.finish(other_plan, options=options)
    staged.abandon()
    assert _partials(tmp_path) == [] and not os.path.exists(tmp_path / "out")


def test_damaged_bytes_copied_ahead_fail_when_the_plan_finishes_them(prefix, tmp_path):
    options = migrate.ConversionOptions()
    table = load_table(ENTRY.table_path)
    plan = copy_plan.make(pipeline.open_checkpoint(prefix, options), table, ENTRY.build_model(),
                          options=options, model_name=MODEL)
    damaged = _copy_checkpoint(prefix, str(tmp_path / "damaged" / "model.ckpt-9"))
    kernel = bundle_index.read_layout(open(damaged + ".index", "rb").read())["logits/kernel"]
    with open(damaged + bundle.DATA_SUFFIX, "r+b") as data:
        data.seek(kernel.offset + kernel.size // 2)
        byte = data.read(1)[0]
        data.seek(-1, os.SEEK_CUR)
        data.write(bytes([byte ^ 0xFF]))
    staged, reason = copy_plan.stage(damaged, str(tmp_path / "out"), table=table,
                                     options=options)
    assert reason == ""  # Checked when it finishes, as the TensorFlow path checks on reading.
    with pytest.raises(migrate.CheckpointError, match="Checksum does not match"):
        staged.finish(plan, options=options)
    assert _partials(tmp_path) == [] and not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("transforming", [False, True], ids=["stored_copies", "transposes"])
def test_a_first_batch_copies_ahead_while_it_plans_and_writes_what_tensorflow_writes(
        prefix, tmp_path, transforming):
    options = migrate.ConversionOptions()
    if transforming:
        table_path = str(tmp_path / "transforming.toml")
        open(table_path, "w", encoding="utf-8").write(TRANSFORMING_TABLE)
        model, factory = _transforming_model, "test_batch_copy:_transforming_model"
        sources = [_transforming_checkpoint(tmp_path / "train", seed=step) for step in (1, 2, 3)]
    else:
        table_path, model, factory = ENTRY.table_path, ENTRY.build_model, MODEL
        sources = [_copy_checkpoint(prefix, str(tmp_path / "train" / f"model.ckpt-{step}"))
                   for step in (1, 2, 3)]
    report = migrate.convert_batch(str(tmp_path / "train"), str(tmp_path / "out"), table_path,
                                   factory, latest_only=False, workers=1)
    assert report.ok, report.summary()
    assert [item.copied_ahead for item in report.items] == [not transforming] * 3
    for source in sources:
        relative = os.path.basename(source)
        expected = str(tmp_path / "tensorflow" / relative)
        pipeline.convert(pipeline.open_checkpoint(source, options), load_table(table_path),
                         model(), expected, options=options, model_name=factory,
                         fill_model=False)
        assert _files(tmp_path / "out" / relative) == _files(expected)
    assert _partials(tmp_path / "out") == []


@pytest.mark.parametrize("keep", ["trainable", "model_state"])
@pytest.mark.parametrize("name", ["small_convnet", "resnet_v1_50", "bert_encoder",
                                  "lstm_language_model", "gru_classifier", "google_bert"])
def test_a_template_without_weight_values_plans_what_the_built_model_plans(
        legacy_checkpoint, name, keep):
    entry = zoo.get(name)  # google_bert: keras-hub's BertBackbone, sized from the checkpoint.
    options = migrate.ConversionOptions(keep=keep)
    prefix = legacy_checkpoint(name)
    checkpoint = pipeline.open_checkpoint(prefix, options)
    table = load_table(entry.table_path)
    template = target_model.load_template(entry.model_factory, checkpoint=prefix)
    # No weight's initial value was computed: each has memory never written.
    assert {id(variable) for variable in template.model.weights} <= set(template.initializers)

    def plan_text(model):
        try:
            return copy_plan.make(checkpoint, table, model, options=options,
                                  model_name=entry.model_factory).to_text()
        except copy_plan.NotCopyOnly as error:
            return f"not a copy plan: {error}"

    # Keys, object graph, manifest and the initial values of what is left out, byte for byte.
    assert plan_text(template) == plan_text(
        target_model.load_model(entry.model_factory, checkpoint=prefix))


def _assigning_model():
    model = _transforming_model()
    model.set_weights([np.full(weight.shape, 0.5, "float32") for weight in model.weights])
    return model


class _ArrayWeight(keras.layers.Layer):
    def build(self, input_shape):
        self.offset = keras.Variable(np.arange(input_shape[-1], dtype="float32"), name="offset")

    def call(self, inputs):
        return inputs + self.offset


def _array_weight_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, _ArrayWeight(name="shift")(inputs))


@pytest.mark.parametrize("factory, values", [
    (_assigning_model, 0.5),  # Pretrained values are what it starts from.
    (_array_weight_model, np.arange(3, dtype="float32")),  # Keras cannot defer it.
    (small_convnet.build_tf_keras_model, None),  # tf_keras: no Keras 3 scope.
], ids=["assigns_values", "weight_from_an_array", "tf_keras"])
def test_a_template_keras_cannot_build_without_values_is_built_as_usual(factory, values):
    template = target_model.load_template(factory)
    assert template.initializers == {}
    if values is not None:
        for weight in template.model.weights:
            np.testing.assert_array_equal(template.initial_value(weight),
                                          np.broadcast_to(values, weight.shape))
    # Nothing deferred is left for the next stateless scope to initialize.
    with keras.StatelessScope():
        keras.layers.Dense(2).build((3,))


@pytest.mark.parametrize("transforming", [False, True], ids=["stored_copies", "transposes"])
def test_convert_from_a_factory_builds_a_template_and_writes_what_the_built_model_writes(
        prefix, tmp_path, monkeypatch, transforming):
    if transforming:  # Assigned into the template's variables, then written from them.
        source = _transforming_checkpoint(tmp_path, seed=5)
        table = MappingTable.from_text(TRANSFORMING_TABLE, origin="transforming.toml")
        factory = _transforming_model
    else:  # Copied as stored; the BatchNorm statistics left out are compared with initial values.
        source, table, factory = prefix, load_table(ENTRY.table_path), ENTRY.build_model
    templates = []
    load_template = target_model.load_template

    def counted(*arguments, **keywords):
        templates.append(load_template(*arguments, **keywords))
        return templates[-1]

    monkeypatch.setattr(target_model, "load_template", counted)
    options = migrate.ConversionOptions()
    report = migrate.convert(source, table, factory, str(tmp_path / "template"),
                             options=options, model_name=MODEL)
    assert len(templates) == 1 and templates[0].initializers
    expected = migrate.convert(source, table, factory(), str(tmp_path / "built"),
                               options=options, model_name=MODEL, fill_model=False)
    assert len(templates) == 1  # A model passed in built is used as it is.
    assert _files(tmp_path / "template") == _files(tmp_path / "built")
    assert _manifest(tmp_path / "template") == _manifest(tmp_path / "built")
    assert report.unwritten_at_initial == expected.unwritten_at_initial
    assert report.warnings == expected.warnings


def _model_in_a_name_scope():
    with tf.name_scope("ported"):  # As code ported from TF 1.x may still do.
        inputs = keras.Input((3,))
        outputs = keras.layers.Dense(2, name="head")(inputs)
    return keras.Model(inputs, outputs)


def test_a_template_names_its_variables_in_the_name_scopes_they_were_created_in():
    template = target_model.load_template(_model_in_a_name_scope)
    built = _model_in_a_name_scope()
    assert template.initializers
    names = [weight.value.name for weight in template.model.weights]
    assert names == [weight.value.name for weight in built.weights] == [
        "ported/head/kernel:0", "ported/head/bias:0"]


def _auto_named_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Normalization()(inputs)))


def _auto_named_assigning_model():
    model = _auto_named_model()
    model.set_weights([np.ones(weight.shape, "float32") for weight in model.weights])
    return model


@pytest.mark.parametrize("factory", [_auto_named_model, _auto_named_assigning_model],
                         ids=["template", "built_as_usual"])
def test_the_model_built_after_a_template_takes_the_names_a_first_build_takes(factory):
    keras.backend.clear_session()
    first = [weight.path for weight in factory().weights]
    keras.backend.clear_session()
    template = target_model.load_template(factory)
    after = target_model.load_model(factory)
    # Layers named by Keras (dense, dense_1, ...) are named as in a process that built one.
    assert [weight.path for weight in template.model.weights] == first
    assert [weight.path for weight in after.weights] == first


def test_plan_checks_a_model_passed_in_built_and_plans_a_factorys_template(prefix):
    # Built in, it is checked as a conversion checks it: a model never called has no weights.
    with pytest.raises(migrate.ModelError, match="The model has no weights"):
        migrate.plan(prefix, ENTRY.table_path, keras.Sequential([keras.layers.Dense(2)]))
    # From a factory, its template plans what the built model plans.
    assert (migrate.plan(prefix, ENTRY.table_path, ENTRY.build_model).target_paths
            == migrate.plan(prefix, ENTRY.table_path, ENTRY.build_model()).target_paths)
