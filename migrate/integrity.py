"""Checks a converted output against its manifest, so a consumer can trust it before loading."""

import dataclasses
import json

from migrate import files
from migrate import writer
from migrate.errors import OutputError
from migrate.errors import first_line


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
    manifest_path = files.join(output_dir, writer.MANIFEST_NAME)
    if not files.exists(manifest_path):
        raise OutputError(f"{output_dir} has no {writer.MANIFEST_NAME}; was it written by "
                          f"`migrate convert`?")
    try:
        data = files.read_bytes(manifest_path)
    except Exception as error:  # tf.errors.OpError: a directory, no permission, ...
        raise OutputError(f"Cannot read {manifest_path}: {first_line(error)}") from None
    try:
        manifest = json.loads(data)
        recorded = {entry["path"]: entry["sha256"] for entry in manifest["output_files"]}
        if not all(isinstance(name, str) and isinstance(digest, str)
                   for name, digest in recorded.items()):
            raise TypeError("every output_files entry needs a string `path` and `sha256`")
    except (ValueError, KeyError, TypeError) as error:
        raise OutputError(f"{manifest_path} is not a valid manifest: {error}") from None
    present = set(files.gfile().listdir(output_dir)) - {writer.MANIFEST_NAME}
    # Only names listed in the directory itself are hashed, so a manifest
    # entry such as '../../etc/passwd' is reported missing, never read.
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
