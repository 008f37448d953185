"""Test-only model factories for batch workers: small_convnet, plus one fault each injects.

A batch worker imports the factory's module (it receives the launcher's
`sys.path`, so this module of tests/ is found) and calls the factory once
to build its model. These factories also patch the worker's checkpoint
opening so that the checkpoint whose path holds a marker (from an
environment variable the test sets, which the worker inherits) kills the
worker, hangs it, or is converted normally; the library holds no test code.

Example:

    monkeypatch.setenv(batch_factories.CRASH_VARIABLE, "SIGABRT:run1/model.ckpt-1")
    migrate.convert_batch(tree, output, table, "batch_factories:crashing_model")
"""

import os
import signal
import time

from migrate.zoo import small_convnet

# "SIGNAL_NAME:path-fragment": the worker kills itself with that signal on that checkpoint.
CRASH_VARIABLE = "TF1_MIGRATE_TEST_CRASH_ON"
# "path-fragment": the worker sleeps (makes no progress) on that checkpoint.
HANG_VARIABLE = "TF1_MIGRATE_TEST_HANG_ON"
# A file each model build appends one line (the process id) to.
BUILD_LOG_VARIABLE = "TF1_MIGRATE_TEST_BUILD_LOG"
# A file each model build appends its parent's process id to: the process that
# started the batch worker (a Beam SDK worker, under multi_processing).
PARENT_LOG_VARIABLE = "TF1_MIGRATE_TEST_PARENT_LOG"
_HANG_SECONDS = 3600


def crashing_model():
    """Builds small_convnet; opening the marked checkpoint kills this process with the signal."""
    signal_name, _, fragment = os.environ[CRASH_VARIABLE].partition(":")

    def crash(path):
        if fragment in str(path):
            os.kill(os.getpid(), signal.Signals[signal_name])

    _before_open(crash)
    return counted_model()


def hanging_model():
    """Builds small_convnet; opening the marked checkpoint sleeps for an hour."""
    fragment = os.environ[HANG_VARIABLE]

    def hang(path):
        if fragment in str(path):
            time.sleep(_HANG_SECONDS)

    _before_open(hang)
    return counted_model()


def counted_model():
    """Builds small_convnet; appends this process's id (and its parent's) to the logs that are set."""
    for variable, process in ((BUILD_LOG_VARIABLE, os.getpid()),
                              (PARENT_LOG_VARIABLE, os.getppid())):
        log = os.environ.get(variable)
        if log:
            with open(log, "a", encoding="utf-8") as file:
                file.write(f"{process}\n")
    return small_convnet.build_model()


def _before_open(action):
    """Makes the worker call `action(path)` before it opens each checkpoint, or converts one by
    a copy plan (this worker built the model: it planned, and converts by its plans too)."""
    from migrate import pipeline
    from migrate.batch import copy_plan

    opened = pipeline.open_checkpoint
    executed = copy_plan.execute

    def open_checkpoint(checkpoint, options=None, **keywords):
        action(checkpoint)
        return opened(checkpoint, options, **keywords)

    def execute(plan, prefix, output, **keywords):
        action(prefix)
        return executed(plan, prefix, output, **keywords)

    pipeline.open_checkpoint = open_checkpoint
    copy_plan.execute = execute
