"""The manifest of a converted output: built, written, read, compared and checked in one place.

`manifest.json` sits beside the TF2 checkpoint. It records the source files
and their fingerprint (from metadata: the `.index`, `.meta` and the data files'
names and sizes; with `hash_sources`, also each file's SHA-256), the table's
digest, the model, the whole `ConversionOptions`, counts and bytes per role,
versions, and the digest of every output file (BLAKE3, under the key
`blake3`; manifests written before hold `sha256`, and `check` reads both),
so that `check` can re-hash an output before it is trusted and a batch can tell an up-to-date output
from a stale one without reading the checkpoints' data.
"""

import concurrent.futures
import dataclasses
import datetime
import hashlib
import json
import platform
import threading

from migrate import files
from migrate.errors import OutputError
from migrate.errors import reason
from migrate.planning import target as target_model
from migrate.version import __version__

MANIFEST_NAME = "manifest.json"
FORMAT = "tf1-migrate/manifest/1"
# What an output file's entry holds besides its path, for messages.
_DIGESTS = " or ".join(f"`{algorithm}`" for algorithm in files.DIGEST_ALGORITHMS)
# The key of a verified conversion's `VerifyReport.manifest_entry()`.
VERIFIED_KEY = "verified"


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
    recorded = {entry["path"]: _recorded_digest(entry) for entry in manifest["output_files"]}
    file_names, directory_names = _walk(output_dir)
    # A directory under a recorded file name is unreadable, not missing.
    present = set(file_names) | (set(directory_names) & set(recorded))
    # Only names found by walking the directory itself are hashed, so a
    # manifest entry such as '../../etc/passwd' is reported missing, never read.
    mismatched = sorted(name for name in recorded if name in present
                        and _digest(files.join(output_dir, name), recorded[name][0])
                        != recorded[name][1])
    return IntegrityReport(output=str(output_dir), checked=len(recorded), mismatched=mismatched,
                           missing=sorted(set(recorded) - present),
                           unexpected=sorted(present - set(recorded)))


def _recorded_digest(entry):
    """Returns `(algorithm, hex digest)` of a manifest's output file entry (read's checked one)."""
    return next((algorithm, entry[algorithm]) for algorithm in files.DIGEST_ALGORITHMS
                if isinstance(entry.get(algorithm), str))


def _digest(path, algorithm):
    try:
        return files.digest(path, algorithm)
    except Exception as error:  # OSError or tf.errors.OpError: a directory under a file's name, ...
        raise _unreadable(path, error) from None


def read(output_dir):
    """Reads and validates the manifest of a converted output.

    Returns:
        The manifest as a dict; its `output_files` entries each hold a string
        `path` and a string digest under its algorithm's name (`blake3`, or
        `sha256` in manifests written before BLAKE3).

    Raises:
        OutputError: there is no readable, valid manifest.
    """
    manifest_path = files.join(output_dir, MANIFEST_NAME)
    if not files.exists(manifest_path):
        raise OutputError(f"{output_dir} has no {MANIFEST_NAME}. Expected a directory written "
                          f"by a conversion. Received: output={str(output_dir)!r}")
    try:
        data = files.read_bytes(manifest_path)
    except Exception as error:  # OSError or tf.errors.OpError: a directory, no permission, ...
        raise _unreadable(manifest_path, error) from None
    try:
        manifest = json.loads(data)
    except ValueError as error:  # json.JSONDecodeError, UnicodeDecodeError.
        raise _invalid(manifest_path, f"not JSON ({error})", data[:80]) from None
    entries = manifest.get("output_files") if isinstance(manifest, dict) else None
    if not isinstance(entries, list):
        raise _invalid(manifest_path, "no output_files list", data[:80])
    for number, entry in enumerate(entries, 1):
        if not (isinstance(entry, dict) and isinstance(entry.get("path"), str)
                and any(isinstance(entry.get(algorithm), str)
                        for algorithm in files.DIGEST_ALGORITHMS)):
            raise _invalid(manifest_path,
                           f"output_files entry {number} needs a string `path` and {_DIGESTS}",
                           entry)
    return manifest


def _invalid(manifest_path, problem, received):
    return OutputError(
        f"{manifest_path} is not a valid manifest: {problem}. Expected a JSON object whose "
        f"output_files entries each hold a string `path` and {_DIGESTS}. "
        f"Received: {received!r}")


def _unreadable(path, error):
    return OutputError(f"Cannot read {path}: {reason(error)}. Expected a readable file. "
                       f"Received: path={path!r}")


def build(*, checkpoint, table, model, model_name, report, sources, options):
    """Returns the manifest of a conversion, without its `output_files` (see `write`).

    Args:
        checkpoint: the `LegacyCheckpoint` converted.
        table: the `MappingTable` used.
        model: the Keras model converted into.
        model_name: how to name the model (`module:callable`), or None for its class name.
        report: the conversion's `ConversionReport`.
        sources: `describe_sources(...)`'s result (or `hash_in_background`'s).
        options: the `ConversionOptions` converted with.
    """
    import keras
    import tensorflow as tf

    return {
        "format": FORMAT,
        "created": created_now(),
        "versions": {"tf1-migrate": __version__, "tensorflow": tf.__version__,
                     "keras": keras.__version__ if target_model.is_keras_3(model)
                     else "tf_keras " + _tf_keras_version(), "python": platform.python_version()},
        "source": source_entry(checkpoint.prefix, checkpoint.role_origin, sources),
        "table": {"path": table.origin, "sha256": table.sha256},
        "model": model_name or type(model).__name__,
        "keep": report.keep,
        "ema": report.ema,
        "options": options.to_json(),
        "ema_swapped": report.ema_swapped,
        "roles": report.roles,
        "written": {"weights": report.written_weights, "bytes": report.written_bytes},
        "dropped": report.dropped,
        "unwritten_targets": report.unwritten_targets,
        "left_as_built": report.left_as_built,
        "nonfinite": report.nonfinite,
        "exports": list(report.exports),
    }


def created_now():
    """The manifest's `created`: now, in UTC, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def source_entry(prefix, role_origin, sources):
    """The manifest's `source`: the prefix, where its roles came from, and `describe_sources`'s
    record of its files."""
    return {"prefix": prefix, "role_origin": role_origin, "files": sources["files"],
            "fingerprint": sources["fingerprint"]}


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
    for current, directory_names, file_names in files.walk(root):
        relative = current[len(root):].strip("/").replace("\\", "/")
        for names, kind in ((file_names, 0), (directory_names, 1)):
            found[kind].extend(f"{relative}/{name}" if relative else name for name in names)
    return sorted(name for name in found[0] if name != MANIFEST_NAME), sorted(found[1])


def write(directory, manifest, *, known_digests=None):
    """Records every file under `directory` in the manifest's `output_files`, then writes it there.

    Args:
        directory: the output directory.
        manifest: `build(...)`'s dict.
        known_digests: `{file name: FileDigest}` of files whose digest was
            computed as they were written (the checkpoint's bundle); only the
            other files are read and hashed here, with `files.OUTPUT_DIGEST`.
    """
    known_digests = known_digests or {}
    entries = []
    for name in output_file_names(directory):
        known = known_digests.get(name)
        path = files.join(directory, name)
        if known is None:
            entries.append({"path": name, files.OUTPUT_DIGEST: files.digest(
                path, files.OUTPUT_DIGEST), "bytes": files.size(path)})
        else:
            entries.append({"path": name, known.algorithm: known.hexdigest, "bytes": known.size})
    manifest["output_files"] = entries
    files.write_bytes(files.join(directory, MANIFEST_NAME),
                      (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


# --- Source fingerprints and resume decisions (batch) ---------------------------------------

# What `source.fingerprint` covers: from metadata only, or also every file's SHA-256.
FINGERPRINT_METADATA = "metadata"
FINGERPRINT_SHA256 = "metadata+sha256"
# Files whose whole content goes into the metadata fingerprint. The `.index`
# holds every tensor's shard, offset, size and CRC32C (which TensorFlow checks
# on every read), so with the data files' sizes it pins the data down without
# reading it; the `.meta` decides the variables' roles, as a SavedModel's
# `saved_model.pb` does (and a frozen GraphDef's `.pb` holds the weights).
_CONTENT_SUFFIXES = (".index", ".meta", ".pb", ".pbtxt")


def metadata_fingerprint(paths):
    """Returns a SHA-256 over the `.index`, `.meta` and `.pb` bytes and the data files' names and
    sizes.

    It reads O(index) bytes, not the data, and depends only on the files'
    names (not their directories or mtimes), so a copied checkpoint has the
    same fingerprint and a changed `.index` or data size a different one.

    Args:
        paths: the checkpoint's files (`source.locate.source_files`).

    Returns:
        The hex digest.

    Example:

    >>> metadata_fingerprint([]) == hashlib.sha256().hexdigest()
    True
    """
    digest = hashlib.sha256()
    for path in sorted(paths, key=files.basename):
        name = files.basename(path)
        digest.update(f"{name}\0{files.size(path)}\0".encode("utf-8"))
        if name.endswith(_CONTENT_SUFFIXES):
            digest.update(files.read_bytes(path))
    return digest.hexdigest()


def describe_sources(paths, *, hash_sources=False):
    """Returns the manifest's record of the source files: each file's size, and the fingerprint.

    Args:
        paths: the checkpoint's files.
        hash_sources: also record every file's full SHA-256 (reads all of
            the data, optimizer slots included).

    Returns:
        `{"files": [{"path", "bytes"[, "sha256"]}], "fingerprint": {"kind", "sha256"}}`.
    """
    entries = []
    for path in paths:
        entry = {"path": path, "bytes": files.size(path)}
        if hash_sources:
            entry["sha256"] = files.sha256(path)
        entries.append(entry)
    kind = FINGERPRINT_SHA256 if hash_sources else FINGERPRINT_METADATA
    return {"files": entries,
            "fingerprint": {"kind": kind, "sha256": metadata_fingerprint(paths)}}


def hash_in_background(paths, *, hash_sources=False):
    """Runs `describe_sources` on a daemon thread; returns a Future of its result.

    Hashing a 1 GB checkpoint in full takes about a second. hashlib releases
    the GIL, so the hashing overlaps the model build and the conversion
    instead of following them; a daemon thread does not hold up the exit of
    a failed run.
    """
    future = concurrent.futures.Future()

    def hash_files():
        try:
            future.set_result(describe_sources(paths, hash_sources=hash_sources))
        except BaseException as error:  # Handed to the caller by `result()`.
            future.set_exception(error)

    threading.Thread(target=hash_files, name="tf1-migrate-source-hashes", daemon=True).start()
    return future


def is_current(output_dir, source_paths, *, table_sha256, model, options, hash_sources=False,
               recheck_outputs=False):
    """Returns the output's manifest if it holds this conversion of these sources, else None.

    Up to date means: the manifest names the same table digest, model and
    `ConversionOptions`; the sources have the same metadata fingerprint (and,
    with `hash_sources`, every file the same SHA-256, which the manifest must
    hold); and the output's files are all there with their recorded sizes
    (with `recheck_outputs`, re-hashed as `check` does); and, if it was
    verified, verification passed.

    Args:
        output_dir: a converted output directory (it need not exist).
        source_paths: the checkpoint's files now.
        table_sha256, model, options: the settings the output must have been made with.
        hash_sources: compare the sources' full SHA-256 too.
        recheck_outputs: re-hash the output files instead of only checking their sizes.

    Returns:
        The manifest dict, or None.
    """
    try:
        manifest = read(output_dir)
        source = manifest["source"]
        same_settings = (manifest["table"]["sha256"] == table_sha256
                         and manifest["model"] == model
                         and manifest["options"] == options.to_json())
        recorded = {files.basename(entry["path"]): entry for entry in source["files"]}
        fingerprint = source["fingerprint"]["sha256"]
    except (OutputError, KeyError, TypeError):
        return None
    # An output kept after failing verification (`keep_failed`) is never current.
    if not same_settings or (manifest.get(VERIFIED_KEY) or {}).get("passed") is False:
        return None
    try:
        if {files.basename(path) for path in source_paths} != set(recorded):
            return None
        if metadata_fingerprint(source_paths) != fingerprint:
            return None
        if hash_sources and any(
                recorded[files.basename(path)].get("sha256") != files.sha256(path)
                for path in source_paths):
            return None
        if recheck_outputs:
            return manifest if check(output_dir).ok else None
        return manifest if _outputs_present(output_dir, manifest) else None
    except OutputError:
        return None
    except Exception:  # OSError or tf.errors.OpError: a source file vanished or cannot be read.
        return None


def _outputs_present(output_dir, manifest):
    """Whether every output file the manifest lists is there with its size, and nothing else.

    Walked, not listed: an export such as `saved_model/` is a directory whose
    files the manifest lists one by one.
    """
    present = set(output_file_names(output_dir))
    recorded = {entry["path"]: entry.get("bytes") for entry in manifest["output_files"]}
    if present != set(recorded):
        return False
    return all(files.size(files.join(output_dir, name)) == size
               for name, size in recorded.items())
