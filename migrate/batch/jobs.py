"""The values a batch passes around: its settings, one job per checkpoint, and one result each.

Both sides of a batch use them: the parent that plans and dispatches
(`pool`, `run`, `beam`) and the worker process that converts (`worker`);
each is sent between them as one line of JSON (`to_json`, `from_json`).
Whether an output is already up to date is decided here too, from the
output's manifest (`skipped_result`), so the parent can skip a checkpoint
without starting a worker.

Example:

    settings = BatchSettings(table="table.toml", table_text=text, table_sha256=digest,
                             model="migrate.zoo.small_convnet:build_model")
    job = Job(source="train/model.ckpt-1", relative="model.ckpt-1", output="out/model.ckpt-1")
    result = skipped_result(job, settings)   # None: convert it.
"""

import dataclasses
import enum

from migrate import errors
from migrate.options import ConversionOptions
from migrate.output import manifest
from migrate.source import locate

UP_TO_DATE = "up to date"


class Status(str, enum.Enum):
    """What happened to one checkpoint of a batch."""

    CONVERTED = "converted"
    SKIPPED = "skipped"
    FAILED = "failed"
    # The batch was interrupted (Ctrl-C) before this checkpoint was converted.
    NOT_STARTED = "not started"


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchSettings:
    """How every checkpoint of a batch is converted; sent to each worker as JSON.

    Attributes:
        table: where the mapping table came from (its path), for manifests.
        table_text: the table's TOML; workers parse it themselves, so they
            need no access to the launcher's files.
        table_sha256: the digest of that TOML.
        model: the Keras model factory as `module:callable`.
        options: the `ConversionOptions` every checkpoint is converted with.
        force: convert again even when an output is up to date.
        check_current: look for an up-to-date output before converting; the
            local runner checks in the parent and turns this off for workers.
        hash_sources: record (and, to skip an output, compare) every source
            file's full SHA-256, not only the fingerprint from metadata.
        recheck_outputs: re-hash an existing output's files before skipping it,
            instead of checking that they are there with their sizes.
    """

    table: str
    table_text: str
    table_sha256: str
    model: str
    options: ConversionOptions = ConversionOptions()
    force: bool = False
    check_current: bool = True
    hash_sources: bool = False
    recheck_outputs: bool = False

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, document):
        return cls(**{**document, "options": ConversionOptions.from_json(document["options"])})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job:
    """One checkpoint to convert.

    Attributes:
        source: the legacy checkpoint prefix.
        relative: the prefix relative to the batch's input directory.
        output: the output directory (the same relative path under the batch's output).
        source_bytes: size of the checkpoint's files, for progress.
        layout: the `copy_plan.source_layout` digest of a checkpoint converted
            by a copy plan (`plan_copies`); empty for the TensorFlow path.
    """

    source: str
    relative: str
    output: str
    source_bytes: int = 0
    layout: str = ""

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, document):
        return cls(**document)


@dataclasses.dataclass(kw_only=True)
class ItemResult:
    """What a batch did with one checkpoint.

    Attributes:
        source, relative, output: as in `Job`.
        status: a `Status` value.
        reason: why it was skipped or failed; empty when converted.
        source_bytes: size of the checkpoint's files.
        kept_bytes, dropped_bytes, left_out_bytes: legacy variable bytes
            carried into the output, dropped by table rules, and left out by
            role (optimizer slots, EMA shadows, bookkeeping, ...).
        written_weights: model weights the output holds.
        warnings: the conversion's warnings.
        seconds: time spent on this checkpoint.
        verify_failed: it failed because the converted model's output differs
            from the legacy graph's (`ConversionOptions.verify`).
        deterministic: it failed for a reason that recurs while the
            checkpoint and the settings are unchanged (`failures.is_deterministic`),
            so the batch remembers it.
        fingerprint: with `deterministic`, the checkpoint's metadata
            fingerprint, taken before it was converted.
        failed_before: not converted this time: it failed before, and
            neither it nor the settings changed since (`reason` is that failure's).
        copied_ahead: its tensors were copied while the batch was still
            planning (`copy_plan.stage`), and the plan confirmed them.
    """

    source: str
    relative: str
    output: str
    status: str
    reason: str = ""
    source_bytes: int = 0
    kept_bytes: int = 0
    dropped_bytes: int = 0
    left_out_bytes: int = 0
    written_weights: int = 0
    warnings: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    verify_failed: bool = False
    deterministic: bool = False
    fingerprint: str = ""
    failed_before: bool = False
    copied_ahead: bool = False

    @classmethod
    def for_job(cls, job, status, reason="", **fields):
        return cls(source=job.source, relative=job.relative, output=job.output,
                   source_bytes=job.source_bytes, status=Status(status).value, reason=reason,
                   **fields)

    def to_json(self):
        # Field by field (a batch report holds one per checkpoint): the only
        # container is the list of warnings, which are strings.
        document = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        document["warnings"] = list(self.warnings)
        return document

    @classmethod
    def from_json(cls, document):
        return cls(**document)


def role_bytes(roles):
    """Returns `(kept, dropped, left_out)` bytes summed over a report's or manifest's roles."""
    return tuple(sum(entry.get(key, 0) for entry in roles.values())
                 for key in ("kept_bytes", "dropped_bytes", "left_out_bytes"))


def current_manifest(job, settings, *, source_files=None):
    """Returns the output's manifest if it already holds this conversion of this source, else None.

    Args:
        job: the `Job`.
        settings: the `BatchSettings`.
        source_files: the checkpoint's files as the batch's scan found them
            (`FoundCheckpoint.files`, `.meta` included; empty when one is
            missing), so that the checkpoint's directory is not listed again;
            None: found here.
    """
    use_meta = settings.options.use_meta
    if source_files is None:
        try:
            paths = locate.source_files(job.source, use_meta=use_meta)
        except errors.CheckpointError:
            return None
    else:
        meta = job.source + locate.META_SUFFIX
        paths = [path for path in source_files if use_meta or path != meta]
    if not paths:
        return None
    return manifest.is_current(job.output, paths, table_sha256=settings.table_sha256,
                               model=settings.model, options=settings.options,
                               hash_sources=settings.hash_sources,
                               recheck_outputs=settings.recheck_outputs)


def skipped_result(job, settings, *, source_files=None):
    """Returns a skipped `ItemResult` if the output is up to date (and not forced), else None.

    `source_files`: as for `current_manifest`.
    """
    if settings.force:
        return None
    current = current_manifest(job, settings, source_files=source_files)
    if current is None:
        return None
    kept, dropped, left_out = role_bytes(current["roles"])
    return ItemResult.for_job(job, Status.SKIPPED, UP_TO_DATE, kept_bytes=kept,
                              dropped_bytes=dropped, left_out_bytes=left_out,
                              written_weights=current["written"]["weights"])
