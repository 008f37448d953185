"""Test-only model factories for batch workers: small_convnet, plus one fault each injects.

A batch worker imports the factory's module (it receives the launcher's
`sys.path`, so this module of tests/ is found) and calls the factory once
to build its model. The crashing and hanging factories also install
`worker_faults` in the worker that builds them, so that the checkpoint whose
path holds a marker (from an environment variable the test sets, which the
worker inherits) kills the worker or hangs it; copy workers, which build no
model, need `conftest.faults_in_every_worker` too. The library holds no test code.

Example:

    monkeypatch.setenv(batch_factories.CRASH_VARIABLE, "SIGABRT:run1/model.ckpt-1")
    migrate.convert_batch(tree, output, table, "batch_factories:crashing_model")
"""

import os

import worker_faults
from migrate.zoo import small_convnet

CRASH_VARIABLE = worker_faults.CRASH_VARIABLE
HANG_VARIABLE = worker_faults.HANG_VARIABLE
# A file each model build appends one line (the process id) to.
BUILD_LOG_VARIABLE = "TF1_MIGRATE_TEST_BUILD_LOG"
# A file each model build appends its parent's process id to: the process that
# started the batch worker (a Beam SDK worker, under multi_processing).
PARENT_LOG_VARIABLE = "TF1_MIGRATE_TEST_PARENT_LOG"


def crashing_model():
    """Builds small_convnet; opening the marked checkpoint kills this process with the signal."""
    worker_faults.install()
    return counted_model()


def hanging_model():
    """Builds small_convnet; opening the marked checkpoint sleeps for an hour."""
    worker_faults.install()
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
