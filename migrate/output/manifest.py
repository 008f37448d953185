"""The manifest of a converted output: built, written, read, compared and checked in one place.

`manifest.json` sits beside the TF2 checkpoint. It records the source files
and their SHA-256, the table's digest, the model, the settings, counts and
bytes per role, versions, and the SHA-256 of every output file, so that
`check` can re-hash an output before it is trusted and a batch can tell an
up-to-date output from a stale one.
"""

import concurrent.futures
import dataclasses
import datetime
import json
import platform
import threading

from migrate import files
from migrate.errors import OutputError
from migrate.errors import first_line
from migrate.version import __version__

MANIFEST_NAME = "manifest.json"
FORMAT = "tf1-migrate/manifest/1"


@dataclasses.dataclass
class IntegrityReport:
    """Result of `check`: files whose bytes differ from the manifest, or are missing or extra."""

    output: str
    checked: int
    mismatched: list
    missing: list
    unexpected: list

    @property
    def ok(self):
        return not (self.mismatched or self.missing or self.unexpected)

    def summary(self):
        if self.ok:
            return f"check OK: {self.output}: {self.checked} file(s) match manifest.json"
        parts = [f"{name}: {label}" for label, names in (
            ("changed", self.mismatched), ("missing", self.missing), ("not in manifest",
                                                                     self.unexpected))
                 for name in names]
        return f"check FAILED: {self.output}: " + "; ".join(parts)

    def to_json(self):
        document = dataclasses.asdict(self)
        document["ok"] = self.ok
        return document


def check(output_dir):
    """Re-hashes every file of a converted output and compares with its `manifest.json`.

    Raises:
        OutputError: there is no readable manifest.
    """
    manifest = read(output_dir)
    recorded = {entry["path"]: entry["sha256"] for entry in manifest["output_files"]}
    file_names, directory_names = _walk(output_dir)
    # A directory under a recorded file name is unreadable, not missing.
    present = set(file_names) | (set(directory_names) & set(recorded))
    # Only names found by walking the directory itself are hashed, so a
    # manifest entry such as '../../etc/passwd' is reported missing, never read.
    mismatched = sorted(name for name in recorded if name in present
                        and _sha256(files.join(output_dir, name)) != recorded[name])
    return IntegrityReport(output=str(output_dir), checked=len(recorded), mismatched=mismatched,
                           missing=sorted(set(recorded) - present),
                           unexpected=sorted(present - set(recorded)))


def _sha256(path):
    try:
        return files.sha256(path)
    except Exception as error:  # tf.errors.OpError: a directory under a file's name, ...
        raise OutputError(f"Cannot read {path}: {first_line(error)}") from None


def read(output_dir):
    """Reads and validates the manifest of a converted output.

    Returns:
        The manifest as a dict; its `output_files` entries each hold a string
        `path` and `sha256`.

    Raises:
        OutputError: there is no readable, valid manifest.
    """
    manifest_path = files.join(output_dir, MANIFEST_NAME)
    if not files.exists(manifest_path):
        raise OutputError(f"{output_dir} has no {MANIFEST_NAME}; was it written by "
                          f"`migrate convert`?")
    try:
        data = files.read_bytes(manifest_path)
    except Exception as error:  # tf.errors.OpError: a directory, no permission, ...
        raise OutputError(f"Cannot read {manifest_path}: {first_line(error)}") from None
    try:
        manifest = json.loads(data)
        entries = manifest["output_files"]
        if not all(isinstance(entry["path"], str) and isinstance(entry["sha256"], str)
                   for entry in entries):
            raise TypeError("every output_files entry needs a string `path` and `sha256`")
    except (ValueError, KeyError, TypeError) as error:
        raise OutputError(f"{manifest_path} is not a valid manifest: {error}") from None
    return manifest


def build(*, checkpoint, table, model, model_name, report, source_entries):
    """Returns the manifest of a conversion, without its `output_files` (see `write`).

    Args:
        checkpoint: the `LegacyCheckpoint` converted.
        table: the `MappingTable` used.
        model: the Keras model converted into.
        model_name: how to name the model (`module:callable`), or None for its class name.
        report: the conversion's `ConversionReport`.
        source_entries: `hash_in_background(...)`'s result for the source files.
    """
    import keras
    import tensorflow as tf

    from migrate.planning import target

    return {
        "format": FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"tf1-migrate": __version__, "tensorflow": tf.__version__,
                     "keras": keras.__version__ if target.is_keras_3(model)
                     else "tf_keras " + _tf_keras_version(), "python": platform.python_version()},
        "source": {
            "prefix": checkpoint.prefix,
            "role_origin": checkpoint.role_origin,
            "files": source_entries,
        },
        "table": {"path": table.origin, "sha256": table.sha256},
        "model": model_name or type(model).__name__,
        "keep": report.keep,
        "ema": report.ema,
        "ema_swapped": report.ema_swapped,
        "roles": report.roles,
        "written": {"weights": report.written_weights, "bytes": report.written_bytes},
        "dropped": report.dropped,
        "unwritten_targets": report.unwritten_targets,
        "nonfinite": report.nonfinite,
        "exports": list(report.exports),
    }


def _tf_keras_version():
    try:
        import tf_keras
        return tf_keras.__version__
    except ImportError:
        return "unknown"


def output_file_names(directory):
    """Returns every file under `directory` but the manifest, `/`-separated and relative, sorted.

    Exports such as `saved_model/` are directories: each of their files is
    listed (and so hashed and checked) on its own.
    """
    return _walk(directory)[0]


def _walk(directory):
    """Returns `(file names, directory names)` under `directory`, relative and sorted."""
    found = ([], [])
    root = str(directory).rstrip("/")
    for current, directory_names, file_names in files.gfile().walk(root):
        relative = current[len(root):].strip("/").replace("\\", "/")
        for names, kind in ((file_names, 0), (directory_names, 1)):
            found[kind].extend(f"{relative}/{name}" if relative else name for name in names)
    return (sorted(name for name in found[0] if name != MANIFEST_NAME),
            sorted(name.rstrip("/") for name in found[1]))


def write(directory, manifest):
    """Hashes every file under `directory` into the manifest's `output_files`, then writes it there."""
    manifest["output_files"] = [
        {"path": name, "sha256": files.sha256(files.join(directory, name)),
         "bytes": files.size(files.join(directory, name))}
        for name in output_file_names(directory)
    ]
    files.write_bytes(files.join(directory, MANIFEST_NAME),
                      (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def hash_in_background(paths):
    """Starts hashing `paths` on a daemon thread; returns a Future of their manifest entries.

    Hashing a 1 GB checkpoint takes about a second. hashlib releases the GIL,
    so the hashing overlaps the model build and the conversion instead of
    following them; a daemon thread does not hold up the exit of a failed run.
    """
    future = concurrent.futures.Future()

    def hash_files():
        try:
            future.set_result([
                {"path": path, "sha256": files.sha256(path), "bytes": files.size(path)}
                for path in paths])
        except BaseException as error:  # Handed to the caller by `result()`.
            future.set_exception(error)

    threading.Thread(target=hash_files, name="tf1-migrate-source-hashes", daemon=True).start()
    return future


def is_current(output_dir, source_paths, *, table_sha256, model, keep, ema, exports=None):
    """Returns the output's manifest if it already holds this conversion of these sources, else None.

    Up to date means: the manifest names the same table digest, model, keep
    and EMA settings (and export formats, when `exports` is given); every
    source file it lists has the same SHA-256 now; and the output's own files
    still match the manifest.
    """
    try:
        manifest = read(output_dir)
        recorded = {files.basename(entry["path"]): entry["sha256"]
                    for entry in manifest["source"]["files"]}
        same_settings = (manifest["table"]["sha256"] == table_sha256
                         and manifest["model"] == model
                         and manifest["keep"] == keep and manifest["ema"] == ema
                         and (exports is None or manifest.get("exports", []) == list(exports)))
    except (OutputError, KeyError, TypeError):
        return None
    if not same_settings:
        return None
    if {files.basename(path) for path in source_paths} != set(recorded):
        return None
    if any(files.sha256(path) != recorded[files.basename(path)] for path in source_paths):
        return None
    try:
        return manifest if check(output_dir).ok else None
    except OutputError:
        return None
