"""Copy plans kept in a batch's output directory, so that a later batch into it plans nothing.

Planning a copy imports TensorFlow and builds the Keras model (seconds, for
VGG-16 more than converting ten checkpoints), and its result depends only on
the batch's settings and the source layout. So a batch keeps each copy plan
it made in `OUTPUT_DIR/batch_plans/`, one file per plan named by the digest
of what determines it: the settings' key (`failures.settings_key`: the
table's digest, the model factory, the whole `ConversionOptions`, the
toolkit's version), the table's path (the manifest names it), the
TensorFlow, Keras and Python versions (the manifest records them) and the
source layout (`copy_plan.source_layout`: the `.index`'s keys, dtypes,
shapes and slicing, and the `.meta`). A later batch into the same output
directory (training went on and wrote new checkpoints, or a rerun after a
failure) whose checkpoints all have a stored plan starts no planning
worker: no process of it imports TensorFlow or Keras. Anything else about a
stored plan (a different table, model, options or layout) gives another
file name, so it is never used; a stored file that cannot be read, is not
whole, or does not hold the plan its name promises is planned anew, with
a note. Stored plans are kept for local output directories only (reading a
URL would import TensorFlow into the batch's own process).

Example:

    store = open_store("converted", settings, table)
    text = store.get(layout)        # None: plan it, then store.put(layout, text)
"""

import functools
import hashlib
import importlib.metadata
import json
import platform

from migrate import errors
from migrate import files
from migrate.batch import copy_plan
from migrate.batch import failures
from migrate.output import atomic

PLANS_DIRECTORY = "batch_plans"
FORMAT = "tf1-migrate/batch-plan/1"
# The distributions whose versions a plan's manifest records (`manifest.build`).
_RECORDED_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "keras", "tf-keras")


class PlanStore:
    """The copy plans kept in one batch output directory for one batch's settings.

    Args:
        output_dir: the batch's (local) output directory.
        settings: the batch's `BatchSettings`.
        table: its `MappingTable`; a stored plan is read against it before
            it is trusted.
        reuse: use the stored plans (False: plan anew and store, as `force`).

    Attributes:
        notes: `{"path", "note"}` for each stored plan that could not be
            used or kept, and why.
    """

    def __init__(self, output_dir, settings, table, *, reuse=True):
        self._directory = files.join(output_dir, PLANS_DIRECTORY)
        self._settings = settings
        self._table = table
        self._reuse = reuse
        self.notes = []

    @functools.cached_property
    def _settings_key(self):
        # Looked up only when a plan is (a rerun with nothing to convert never asks).
        versions = {"python": platform.python_version()}
        for name in _RECORDED_DISTRIBUTIONS:
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                versions[name] = None
        return {**failures.settings_key(self._settings), "table_path": self._settings.table,
                "versions": versions}

    def key(self, layout):
        """Everything a plan for `layout` depends on, as a JSON-ready dict."""
        return {**self._settings_key, "layout": layout}

    def path(self, layout):
        """Where the plan for `layout` is kept: its file is named by the digest of its key."""
        text = json.dumps(self.key(layout), sort_keys=True)
        return files.join(self._directory,
                          hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] + ".json")

    def get(self, layout):
        """Returns the stored plan text for `layout`, or None (none stored, or not usable: noted)."""
        path = self.path(layout)
        if not self._reuse or not files.exists(path):
            return None
        try:
            document = json.loads(files.read_bytes(path))
            text = document["plan"]
            if document.get("format") != FORMAT or document.get("key") != self.key(layout):
                raise ValueError("it holds another plan than its name says")
            if document.get("plan_sha256") != hashlib.sha256(text.encode("utf-8")).hexdigest():
                raise ValueError("its plan does not match its digest")
            if copy_plan.CopyPlan.layout_of(text) != layout:
                raise ValueError("its plan is for another layout")
            copy_plan.CopyPlan.from_text(text, self._table)
        except Exception as error:  # Damaged, cut short, edited: never trusted.
            self.notes.append({"path": self._relative(path), "note": (
                f"stored copy plan cannot be used ({errors.first_line(error) or type(error).__name__}); "
                f"planned anew")})
            return None
        return text

    def put(self, layout, text):
        """Keeps the plan text for `layout`, written whole (`atomic.write_file`); a failure is noted."""
        path = self.path(layout)
        document = {"format": FORMAT, "key": self.key(layout),
                    "plan_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "plan": text}
        try:
            files.makedirs(self._directory)
            atomic.write_file(path, (json.dumps(document, sort_keys=True) + "\n").encode("utf-8"))
        except Exception as error:  # OSError: the batch goes on; the next one plans again.
            self.notes.append({"path": self._relative(path), "note": (
                f"copy plan not stored: {errors.first_line(error)}")})

    def _relative(self, path):
        return files.join(PLANS_DIRECTORY, files.basename(path))


def open_store(output_dir, settings, table):
    """Returns the `PlanStore` of a batch's output directory, or None for a URL (not kept there).

    A forced batch (`settings.force`) plans anew and replaces what is stored.
    """
    if files.is_url(output_dir):
        return None
    return PlanStore(output_dir, settings, table, reuse=not settings.force)

