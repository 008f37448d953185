"""Copy plans: a batch converts the checkpoints of one layout without TensorFlow.

When every weight of a conversion is a legacy tensor's stored bytes (copied
as they are) or a NumPy transform of tensors stored whole (reshape,
transpose, slice, unpartition, a layout converter), TensorFlow is needed only
to plan: the model's weights, the output's keys and its object graph. Those
are the same for every checkpoint of one table, model and source layout (the
`.index`'s keys, dtypes and shapes, and the `.meta` the roles come from), so
a batch plans once per layout, in one worker that imports TensorFlow and
builds the model (`make`), and its workers execute that plan on every
checkpoint of the layout (`execute`) with NumPy and the project's own
tensor-bundle writer: they import neither TensorFlow nor Keras. The output
is byte for byte the checkpoint that `pipeline.convert` writes, with the same
manifest, CRC32C checks and BLAKE3 digests. While the plan is being made, a
worker may already copy what the plan will most likely copy as stored
(`stage`), and finish it by the plan once it comes (`StagedCopy.finish`).

Example:

    plan = make(checkpoint, table, model, options=options, model_name=spec)  # TensorFlow here
    layout, _ = source_layout(other_prefix, use_meta=options.use_meta)  # TensorFlow-free from here
    if layout == plan.layout:
        report = execute(plan, other_prefix, output, options=options)
    # Or copied first, finished once the plan exists:
    staged, why_not = stage(prefix, output, table=table, options=options)
    if staged is not None and staged.matches(plan):
        report = staged.finish(plan, options=options)
"""

import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import time

import numpy as np

from migrate import errors
from migrate import files
from migrate import pipeline
from migrate.output import assign
from migrate.output import atomic
from migrate.output import bundle
from migrate.output import checkpoint as output_checkpoint
from migrate.output import direct_read
from migrate.output import manifest as manifest_lib
from migrate.output import report as report_lib
from migrate.mapping import transforms as transforms_lib
from migrate.planning import plan as plan_lib
from migrate.planning import target as target_model
from migrate.source import bundle_index
from migrate.source import checkpoint as checkpoint_lib
from migrate.source import locate
from migrate.source import roles as roles_lib

# Dtypes read here as NumPy reads them (bfloat16 and strings go through TensorFlow).
_PLAIN_DTYPES = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64",
                           "uint8", "uint16", "uint32", "uint64", "bool", "complex64",
                           "complex128"})


class NotCopyOnly(errors.MigrateError):
    """The conversion needs TensorFlow for more than planning; its message says why."""


@dataclasses.dataclass(frozen=True)
class Output:
    """One tensor of the output checkpoint.

    Attributes:
        key: its checkpoint key.
        target: the model weight's path.
        dtype: the weight's NumPy dtype name.
        shape: the weight's shape.
        source: for a stored copy, the legacy key whose bytes are copied.
    """

    key: str
    target: str
    dtype: str
    shape: tuple
    source: str = ""


@dataclasses.dataclass(frozen=True)
class Step:
    """Writes `outputs`: stored copies (no `assignment`), or the assignment converted by NumPy."""

    outputs: tuple
    assignment: object = None


@dataclasses.dataclass(frozen=True)
class CopyPlan:
    """How every checkpoint of one source layout is converted, without TensorFlow.

    Attributes:
        layout: the `source_layout` digest it applies to.
        planned_from: the checkpoint it was planned from.
        steps: the `Step`s, in the order the TensorFlow path writes them.
        object_graph: the output's serialized object graph.
        report: the `ConversionReport` of `planned_from` (per checkpoint, its
            prefix, role origin, output and NaN/Inf counts are its own).
        manifest: the manifest of `planned_from`, but its `created`,
            `source` and `nonfinite` (each checkpoint's own).
        unwritten: `[(legacy key, target path, initial value)]` of the plain
            rules naming the weights the output leaves out
            (`report.unwritten_sources`), or None.
    """

    layout: str
    planned_from: str
    steps: tuple
    object_graph: bytes
    report: report_lib.ConversionReport
    manifest: dict
    unwritten: tuple | None = None

    def to_text(self):
        """Returns the plan as JSON text, for a worker of the same toolkit version (`from_text`).

        Data only: an assignment names its table rule by index, its transforms
        by their text, and arrays are their dtype, shape and bytes.
        """
        return json.dumps({
            "layout": self.layout, "planned_from": self.planned_from,
            "steps": [{"outputs": [dataclasses.astuple(output) for output in step.outputs],
                       "assignment": _assignment_json(step.assignment)}
                      for step in self.steps],
            "object_graph": base64.b64encode(self.object_graph).decode("ascii"),
            "report": {field.name: getattr(self.report, field.name)
                       for field in dataclasses.fields(self.report)},
            "manifest": self.manifest,
            "unwritten": None if self.unwritten is None else [
                [key, target, _array_json(value)] for key, target, value in self.unwritten]},
            default=_plain)

    @classmethod
    def from_text(cls, text, table):
        """Reads `to_text`'s plan; `table` is the `MappingTable` it was planned with."""
        document = json.loads(text)
        return cls(
            layout=document["layout"], planned_from=document["planned_from"],
            steps=tuple(Step(tuple(Output(key, target, dtype, tuple(shape), source)
                                   for key, target, dtype, shape, source in step["outputs"]),
                             _assignment_of(step["assignment"], table))
                        for step in document["steps"]),
            object_graph=base64.b64decode(document["object_graph"]),
            report=report_lib.ConversionReport(**document["report"]),
            manifest=document["manifest"],
            unwritten=None if document["unwritten"] is None else tuple(
                (key, target, _array_of(value)) for key, target, value in document["unwritten"]))

    @staticmethod
    def layout_of(text):
        """The layout digest of a plan's text, read without its table."""
        return json.loads(text)["layout"]


def _plain(value):
    """JSON for the NumPy scalars and tuples a layout's parameters may hold."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Cannot write {type(value).__name__} into a copy plan. Received: {value!r}")


def _assignment_json(assignment):
    if assignment is None:
        return None
    return {"rule": assignment.rule.index, "sources": assignment.sources,
            "read_keys": assignment.read_keys, "targets": assignment.targets,
            "parts": assignment.parts, "target_parts": assignment.target_parts,
            "parameters": assignment.parameters, "target_shapes": assignment.target_shapes,
            "target_transforms": [[str(step) for step in steps]
                                  for steps in assignment.target_transforms]}


def _assignment_of(document, table):
    if document is None:
        return None
    rule = table.rules[document["rule"] - 1]
    return plan_lib.Assignment(
        rule=rule, sources=tuple(document["sources"]), read_keys=tuple(document["read_keys"]),
        targets=tuple(document["targets"]), parts=tuple(document["parts"]),
        target_parts=tuple(document["target_parts"]), parameters=document["parameters"],
        target_shapes=tuple(tuple(shape) for shape in document["target_shapes"]),
        target_transforms=tuple(transforms_lib.parse_all(texts)
                                for texts in document["target_transforms"]))


def _array_json(array):
    array = np.ascontiguousarray(array)
    return {"dtype": array.dtype.str, "shape": list(array.shape),
            "bytes": base64.b64encode(array.tobytes()).decode("ascii")}


def _array_of(document):
    return np.frombuffer(base64.b64decode(document["bytes"]),
                         dtype=np.dtype(document["dtype"])).reshape(document["shape"]).copy()


def may_copy(options):
    """Whether conversions with these `ConversionOptions` may be copy plans: no verification,
    no exports and no builder (each needs TensorFlow and the model)."""
    return options.verify is None and not options.exports and not options.builder


def source_layout(prefix, *, use_meta):
    """Returns `(digest, {key: bundle_index.EntryLayout})` of a local V2 checkpoint's layout.

    The digest covers every key, dtype, shape and slicing of the `.index`,
    and the `.meta` the roles come from (`use_meta`): two checkpoints with the
    same digest have the same plan. Read without TensorFlow.

    Returns:
        `(None, None)` for a checkpoint a copy plan cannot apply to (V1, a
        URL, a SavedModel, an `.index` not read here).
    """
    if files.is_url(prefix) or not files.exists(prefix + locate.INDEX_SUFFIX):
        return None, None
    try:
        entries = bundle_index.read_layout(checkpoint_lib.read_index_file(prefix))
    except errors.CheckpointError:
        return None, None
    if entries is None:
        return None, None
    digest = hashlib.sha256()
    for key in sorted(entries):
        entry = entries[key]
        digest.update(repr((key, entry.dtype, entry.shape, entry.slices)).encode("utf-8"))
    meta_path = prefix + locate.META_SUFFIX
    if use_meta and files.exists(meta_path):
        digest.update(b"\0meta\0" + files.read_bytes(meta_path))
    return digest.hexdigest(), entries


def make(checkpoint, table, model, *, options, model_name):
    """Plans the conversion of `checkpoint` once, for every checkpoint of its layout.

    Args:
        checkpoint: a `LegacyCheckpoint`.
        table: the `MappingTable`.
        model: the built Keras model, or a `target.Template` (only the structure and
            the initial values are used).
        options: the `ConversionOptions`.
        model_name: how the manifest names the model.

    Returns:
        A `CopyPlan`.

    Raises:
        NotCopyOnly: a weight needs TensorFlow to be read, or the options
            need the model (see `may_copy`).
        PlanError: the plan has problems.
    """
    if not may_copy(options):
        raise NotCopyOnly("verification, exports and builders need TensorFlow and the model")
    layout, _ = source_layout(checkpoint.prefix, use_meta=options.use_meta)
    if layout is None or checkpoint.artifact is not None:
        raise NotCopyOnly(f"{checkpoint.prefix} is not a local V2 checkpoint read here")
    template = model if isinstance(model, target_model.Template) else target_model.Template(model)
    model = template.model
    conversion_plan, targets, variables_by_path, object_paths = pipeline.plan_for_writing(
        checkpoint, table, model, options)
    conversion_plan.raise_for_problems()
    report = pipeline.conversion_report(checkpoint, table, conversion_plan, targets,
                                        options=options, output="")
    keys, object_graph = output_checkpoint.keys_and_object_graph(output_checkpoint.mirror(
        object_paths, variables_by_path, alias_model_children=not target_model.is_keras_3(model)))
    written = set()

    def output(target, source=""):
        variable = variables_by_path[target]
        key = keys.get(id(variable))
        if key is None or key in written:
            raise NotCopyOnly(f"the weight {target} is not one variable written once")
        written.add(key)
        return Output(key=key, target=target, dtype=direct_read.numpy_dtype(variable).name,
                      shape=tuple(int(size) for size in variable.shape), source=source)

    steps = []
    for assignment in assign.largest_first(conversion_plan.assignments, checkpoint):
        copies = direct_read.stored_copies(assignment, checkpoint, variables_by_path)
        if copies:
            reshaped = assignment.reshaped_sources()
            steps.append(Step(tuple(output(target, source.name)
                                    for target, (_, source, _) in zip(reshaped, copies))))
            continue
        for key in assignment.read_keys:
            _check_readable(checkpoint, key)
        steps.append(Step(tuple(output(target) for target in assignment.targets), assignment))
    if len(written) != len(keys):
        raise NotCopyOnly("the output's object graph holds weights the plan does not write")
    unwritten = report_lib.unwritten_sources(checkpoint.variables, table, report.unwritten_targets)
    if unwritten is not None:
        for key, _ in unwritten:
            _check_readable(checkpoint, key)
        unwritten = tuple((key, target, template.initial_value(variables_by_path[target]))
                          for key, target in unwritten)
    manifest = manifest_lib.build(checkpoint=checkpoint, table=table, model=model,
                                  model_name=model_name, report=report,
                                  sources={"files": [], "fingerprint": {}}, options=options)
    for per_checkpoint in ("created", "source", "nonfinite"):
        del manifest[per_checkpoint]
    return CopyPlan(layout=layout, planned_from=checkpoint.prefix, steps=tuple(steps),
                    object_graph=bytes(object_graph), report=report, manifest=manifest,
                    unwritten=unwritten)


def _check_readable(checkpoint, key):
    """Refuses a tensor NumPy cannot read from the data file: not stored whole as plain numbers."""
    source = checkpoint.variables.get(key)
    stored = checkpoint.stored_tensor(key)
    if (source is None or source.dtype not in _PLAIN_DTYPES or stored is None
            or stored.size != source.nbytes):
        raise NotCopyOnly(f"{key} is not stored whole as plain numbers; TensorFlow reads it")


def execute(plan, prefix, output, *, options, hash_sources=False):
    """Converts the checkpoint at `prefix` into `output` by `plan`, without TensorFlow.

    As `pipeline.convert(..., overwrite=True, fill_model=False)` would: the
    same checks (a changed or truncated checkpoint, damaged bytes, NaN/Inf,
    an output that is not a converted one), the same output files, written in
    a temporary directory renamed into place.

    Args:
        plan: a `CopyPlan`.
        prefix: a checkpoint prefix of the plan's layout.
        output: the output directory (replaced if it is a converted output).
        options: the `ConversionOptions` the plan was made with.
        hash_sources: record every source file's full SHA-256 in the manifest.

    Returns:
        The `ConversionReport`.

    Raises:
        CheckpointError: the checkpoint is not of the plan's layout, is cut
            short, or holds damaged bytes or NaN/Inf.
        OutputError: `output` cannot be written or is not a converted output.
    """
    copy = _Copy(prefix, output, options=options, hash_sources=hash_sources, plan=plan)
    with copy.abandoned_on_error():
        nonfinite = []
        for step in plan.steps:
            _write_step(step, copy.writer, copy.stored, copy.entries, nonfinite,
                        options.allow_nonfinite)
        return copy.finish(plan, nonfinite)


def staged_sources(entries, table, options):
    """The legacy keys a plan of this layout will most likely copy as stored, in its order.

    Decided from the `.index` and the table alone, before the plan exists:
    the tensors whose names say they are kept (`options.keep`; slots,
    shadows and counters left out), each matched by a rule that only
    reshapes it (no layout, no tied weights), stored whole as plain numbers,
    largest first as `assign.largest_first` orders them. The plan has the
    last word (`StagedCopy.finish`).

    Args:
        entries: `{key: bundle_index.EntryLayout}` (`source_layout`).
        table: the `MappingTable`.
        options: the `ConversionOptions`.

    Returns:
        The keys, or None when the plan is not expected to be all stored
        copies (a kept tensor needs a transform, a layout, or no rule maps it).
    """
    if options.ema or not may_copy(options):
        return None
    kept_roles = roles_lib.KEEP_MODES[options.keep]
    sizes = {}
    for key, entry in entries.items():
        name = bundle.DATA_TYPE_NAMES.get(entry.dtype)
        if roles_lib.role_from_name(key, name) not in kept_roles:
            continue
        found = table.lookup(key)
        if found is not None and found.target is None:
            continue  # A rule drops it.
        if (found is None or found.rule.layout is not None or found.also or entry.slices
                or name not in _PLAIN_DTYPES
                or any(step.name not in transforms_lib.ORDER_KEEPING
                       for step in found.rule.transforms)):
            return None
        sizes[key] = np.dtype(name).itemsize * math.prod(entry.shape)
    if not sizes:
        return None
    return sorted(sizes, key=lambda key: (-sizes[key], (key,)))


def stage(prefix, output, *, table, options, hash_sources=False):
    """Copies what `prefix`'s plan will most likely copy, before the plan exists; never raises.

    A batch's first checkpoints are copied this way while the planning
    worker imports TensorFlow and builds the model: the tensors
    `staged_sources` names are written into the output's temporary
    directory, in the plan's order, and wait there (no file open) for the
    plan, which `StagedCopy.finish` checks them against.

    Returns:
        `(StagedCopy, "")`, or `(None, why not)`: the checkpoint is then
        converted as usual once the plan exists.
    """
    if files.is_url(prefix) or files.is_url(str(output)):
        return None, "not local"
    try:
        copy = _Copy(prefix, output, options=options, hash_sources=hash_sources)
    except errors.MigrateError as error:
        return None, errors.first_line(error)
    try:
        with copy.abandoned_on_error():
            sources = staged_sources(copy.entries, table, options)
            if sources is None:
                copy.abandon()
                return None, "the plan is not expected to copy every weight as stored"
            counts = {}
            for key in sources:
                entry = copy.entries[key]
                name = bundle.DATA_TYPE_NAMES[entry.dtype]
                counts[key] = assign.NonfiniteCount()
                copy.writer.add_stored(key, name, entry.shape, _stored(copy.stored, copy.entries, key),
                                       inspect=counts[key])
            copy.writer.pause()
    except Exception as error:  # The usual conversion will meet it again, and report it.
        return None, errors.first_line(error)
    return StagedCopy(copy, tuple(sources), counts, time.monotonic() - copy.started), ""


class StagedCopy:
    """A checkpoint's tensors copied before its plan existed (`stage`), waiting for it.

    Attributes:
        prefix: the checkpoint's prefix.
        sources: the legacy keys copied, in order.
        seconds: the time the copying took.
    """

    def __init__(self, copy, sources, counts, seconds):
        self._copy = copy
        self.prefix = copy.prefix
        self.sources = sources
        self._counts = counts
        self.seconds = seconds

    def matches(self, plan):
        """Whether `plan` writes exactly the staged copies, in their order, and nothing else."""
        return (plan.layout == self._copy.layout
                and all(step.assignment is None for step in plan.steps)
                and tuple(output.source for output in _outputs(plan)) == self.sources)

    def finish(self, plan, *, options):
        """Completes the conversion by `plan` (which must `match`): the output is then the one
        `execute` writes, byte for byte.

        Returns:
            The `ConversionReport` (its seconds: the copying and the finishing).

        Raises:
            The errors of `execute`: damaged bytes, NaN/Inf, an output that
            cannot be written.
        """
        if not self.matches(plan):
            raise ValueError(f"Expected the plan the copies were staged for. Received: "
                             f"plan={plan.planned_from!r}")
        copy, started = self._copy, time.monotonic()
        with copy.abandoned_on_error():
            outputs = _outputs(plan)
            copy.writer.rekey({output.source: (output.key, output.dtype, output.shape)
                               for output in outputs})
            nonfinite = []
            for output in outputs:
                assign.check_finite(output.source, copy.entries[output.source].shape,
                                    self._counts[output.source].total, nonfinite,
                                    options.allow_nonfinite)
            report = copy.finish(plan, nonfinite)
        report.seconds = self.seconds + time.monotonic() - started
        return report

    def abandon(self):
        """Removes what was staged (the plan did not match, or the batch is stopping)."""
        self._copy.abandon()


def _outputs(plan):
    """Every `Output` of `plan`, in the order it writes them."""
    return [output for step in plan.steps for output in step.outputs]


class _Abandoned(Exception):
    """Unwinds a `_Copy` whose output is not wanted."""


class _Copy:
    """One checkpoint's conversion by copy, from opening its source to renaming its output.

    Opening checks what `execute` checks before writing (the layout, against
    `plan` when given; the data files' sizes; the output), then enters the
    output's temporary directory and a `BundleWriter` in it.
    """

    def __init__(self, prefix, output, *, options, hash_sources, plan=None):
        self.started = time.monotonic()
        self.prefix, self.output, self.options = prefix, output, options
        self.layout, self.entries = source_layout(prefix, use_meta=options.use_meta)
        if plan is not None and self.layout != plan.layout:
            raise errors.CheckpointError(
                f"Checkpoint {prefix} is not of the layout the batch planned from "
                f"{plan.planned_from} (its .index or .meta changed since). Expected the same "
                f"keys, shapes, dtypes and graph. Received: checkpoint={prefix!r}")
        if self.layout is None:
            raise errors.CheckpointError(f"Checkpoint {prefix} is not a local V2 checkpoint read "
                                         f"here. Received: checkpoint={prefix!r}")
        source_paths = locate.source_files(prefix, use_meta=options.use_meta)
        shard_paths = {locate.data_shard_number(path): path for path in source_paths
                       if path not in (prefix + locate.INDEX_SUFFIX, prefix + locate.META_SUFFIX)}
        checkpoint_lib.check_shard_sizes(prefix, shard_paths, bundle_index.extents_of(self.entries))
        self.stored = bundle_index.StoredTensors(prefix, self.entries, shard_paths)
        self.recovered = atomic.recover_previous(output)
        try:
            atomic.check_output(output, overwrite=True, source_files=source_paths)
        except errors.OutputError as error:
            if not self.recovered:
                raise
            raise errors.OutputError(" ".join([*self.recovered, str(error)]),
                                     option=error.option) from None
        self._sources = manifest_lib.hash_in_background(source_paths, hash_sources=hash_sources)
        self._staging = contextlib.ExitStack()
        self.staging = self._staging.enter_context(atomic.staged_directory(output, overwrite=True))
        self._writing = contextlib.ExitStack()
        try:
            self.writer = self._writing.enter_context(
                bundle.BundleWriter(files.join(self.staging, output_checkpoint.CHECKPOINT_NAME)))
        except BaseException:
            self._staging.close()
            raise

    @contextlib.contextmanager
    def abandoned_on_error(self):
        """Removes the temporary directory when the block raises (and raises)."""
        try:
            yield
        except BaseException as error:
            self._writing.__exit__(type(error), error, error.__traceback__)
            self._staging.__exit__(type(error), error, error.__traceback__)
            raise

    def abandon(self):
        """Removes the temporary directory; nothing appears under the output."""
        error = _Abandoned()
        self._writing.__exit__(_Abandoned, error, None)
        self._staging.__exit__(_Abandoned, error, None)

    def finish(self, plan, nonfinite):
        """Writes the object graph, the index, the state file and the manifest; renames the
        temporary directory into place. Returns the `ConversionReport`."""
        report = dataclasses.replace(
            plan.report, checkpoint=self.prefix, output=str(self.output),
            recovered=self.recovered,
            role_origin=checkpoint_lib.role_origin_of(self.prefix,
                                                      use_meta=self.options.use_meta))
        if plan.unwritten is not None:
            report.unwritten_at_initial = all(
                report_lib.same_value(_read(self.stored, self.entries, key), initial)
                for key, _, initial in plan.unwritten)
        self.writer.add_string(output_checkpoint.OBJECT_GRAPH_KEY, plan.object_graph)
        self._writing.close()
        output_checkpoint.write_state_file(self.staging)
        report.nonfinite = [[name, count] for name, count in nonfinite]
        manifest = {**plan.manifest, "created": manifest_lib.created_now(),
                    "source": manifest_lib.source_entry(self.prefix, report.role_origin,
                                                        self._sources.result()),
                    "nonfinite": report.nonfinite}
        manifest_lib.write(self.staging, manifest, known_digests=self.writer.digests)
        self._staging.close()
        report.seconds = time.monotonic() - self.started
        return report


def _write_step(step, writer, stored, entries, nonfinite, allow_nonfinite):
    if step.assignment is None:
        for output in step.outputs:
            source = _stored(stored, entries, output.source)
            count = assign.NonfiniteCount()
            writer.add_stored(output.key, output.dtype, output.shape, source, inspect=count)
            assign.check_finite(output.source, entries[output.source].shape, count.total,
                                nonfinite, allow_nonfinite)
        return
    arrays = [_read(stored, entries, key) for key in step.assignment.read_keys]
    converted = assign.convert_arrays(step.assignment, arrays, nonfinite, allow_nonfinite)
    for output in step.outputs:
        value = converted.pop(output.target)
        assign.check_converted_shape(output.target, value, output.shape)
        # As a variable's assignment would: its dtype, in C order.
        writer.add(output.key, np.ascontiguousarray(value, dtype=output.dtype))


def _stored(stored, entries, key):
    tensor = stored.tensor(key)
    entry = entries[key]
    name = bundle.DATA_TYPE_NAMES.get(entry.dtype)
    if (tensor is None or name is None
            or tensor.size != np.dtype(name).itemsize * int(np.prod(entry.shape, dtype=np.int64))):
        raise errors.CheckpointError(
            f"Cannot read {key!r} from checkpoint {stored.prefix}: it is not stored whole as "
            f"plain numbers. Expected the layout the batch planned. Received: name={key!r}")
    return tensor


def _read(stored, entries, key):
    entry = entries[key]
    return bundle.read_stored(_stored(stored, entries, key), bundle.DATA_TYPE_NAMES[entry.dtype],
                              entry.shape)
