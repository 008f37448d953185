"""Remembers a batch's deterministic failures, so that a rerun does not retry what must fail again.

A checkpoint that failed for a reason in its own bytes or in the batch's
settings (a damaged or unreadable checkpoint, a plan problem, a failed
verification) fails the same way as long as neither changes; retrying it
starts a worker, imports TensorFlow and builds the model only to print the
same error. So a batch records such failures in `OUTPUT_DIR/batch_failures.json`,
each with what it depends on: the checkpoint's metadata fingerprint (the one
manifests hold: `.index` and `.meta` bytes, data files' names and sizes),
the table's digest, the model, the whole `ConversionOptions` and the
toolkit's version. A rerun reports a recorded failure whose record still
matches as "failed before, unchanged", with its reason, and starts no worker
for it. Transient failures are never recorded: a timeout, a worker killed by
a signal, an I/O error (a network filesystem, a permission), an output that
could not be written, or an unexpected exception.

Example:

    records = read(output_dir)
    record = records.get(job.relative)
    if record is not None and still_fails(record, job.source, settings_key(settings)):
        ...  # report it as failed before, unchanged
"""

import json

from migrate import errors
from migrate import files
from migrate.batch import scan
from migrate.output import atomic
from migrate.output import manifest
from migrate.version import __version__

FAILURES_NAME = "batch_failures.json"
FORMAT = "tf1-migrate/batch-failures/1"
FAILED_BEFORE = "failed before, unchanged"
# tf.errors classes that say the storage, not the checkpoint, failed (a URL's
# filesystem timing out, throttling, going away); named, so that this module
# needs no TensorFlow in the batch's own process.
_TRANSIENT_TENSORFLOW_ERRORS = {"UnavailableError", "DeadlineExceededError", "AbortedError",
                                "CancelledError", "ResourceExhaustedError", "UnknownError",
                                "InternalError", "PermissionDeniedError"}


def settings_key(settings):
    """Returns what, besides the checkpoint, a conversion's outcome depends on (a `BatchSettings`).

    Example:

    >>> from migrate.batch.jobs import BatchSettings
    >>> key = settings_key(BatchSettings(table="t.toml", table_text="", table_sha256="ab",
    ...                                  model="m:f"))
    >>> sorted(key)
    ['model', 'options', 'table_sha256', 'version']
    """
    return {"table_sha256": settings.table_sha256, "model": settings.model,
            "options": settings.options.to_json(), "version": __version__}


def source_fingerprint(prefix):
    """Returns the metadata fingerprint of a checkpoint's files, damaged or not; "" if unreadable.

    The files are all those named after the prefix (`.index`, data shards,
    `.meta`, whatever a damaged checkpoint has left), so a file added,
    removed or changed in size, or a changed `.index` or `.meta`, changes
    it. Read: the `.index` and `.meta`, not the data.
    """
    try:
        paths = scan.files_named_after(prefix)
        return manifest.metadata_fingerprint(paths) if paths else ""
    except Exception:  # OSError or tf.errors.OpError: nothing to fingerprint, so never remembered.
        return ""


def is_deterministic(error):
    """Whether `error`, raised while converting a checkpoint, must recur while nothing changes.

    Our errors about the input, the plan or the verification are; an
    `OutputError` (the output's directory, not the checkpoint) is not, nor is
    any error caused by an I/O error on the way, nor an unexpected exception.

    Example:

    >>> is_deterministic(errors.CheckpointError("Cannot read checkpoint: bad magic"))
    True
    >>> is_deterministic(errors.OutputError("disk full"))
    False
    >>> try:
    ...     try:
    ...         raise TimeoutError("gs:// read timed out")
    ...     except OSError:
    ...         raise errors.CheckpointError("Cannot read checkpoint") from None
    ... except errors.CheckpointError as error:
    ...     is_deterministic(error)
    False
    """
    if not isinstance(error, errors.MigrateError) or isinstance(error, errors.OutputError):
        return False
    seen = set()
    cause = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        kind = type(cause)
        if isinstance(cause, OSError) or (kind.__module__.startswith("tensorflow")
                                          and kind.__name__ in _TRANSIENT_TENSORFLOW_ERRORS):
            return False
        # `raise ... from None` hides the context from tracebacks, not from here.
        cause = cause.__cause__ or cause.__context__
    return True


def read(output_dir):
    """Returns the recorded failures, `{relative prefix: record}`; {} when none or unreadable."""
    path = files.join(output_dir, FAILURES_NAME)
    try:
        if not files.exists(path):
            return {}
        document = json.loads(files.read_bytes(path))
    except Exception:  # Unreadable or not JSON: forgotten, so every failure is retried.
        return {}
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return {}
    records = document.get("failures")
    if not isinstance(records, dict):
        return {}
    return {relative: record for relative, record in records.items()
            if isinstance(record, dict) and isinstance(record.get("reason"), str)}


def still_fails(record, prefix, key):
    """Whether a recorded failure still holds for the checkpoint at `prefix` under settings `key`."""
    if any(record.get(name) != value for name, value in key.items()):
        return False
    fingerprint = record.get("fingerprint")
    return bool(fingerprint) and source_fingerprint(prefix) == fingerprint


def make_record(item, key):
    """Returns the record of a failed `ItemResult` whose failure was deterministic."""
    return {**key, "fingerprint": item.fingerprint, "reason": item.reason,
            "verify_failed": item.verify_failed}


def write(output_dir, records):
    """Writes `{relative prefix: record}` atomically; with none, removes the file."""
    path = files.join(output_dir, FAILURES_NAME)
    if not records:
        if files.exists(path):
            files.remove(path)
        return
    document = {"format": FORMAT, "failures": dict(sorted(records.items()))}
    atomic.write_file(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
