"""Faults the batch tests inject into worker processes: a crash or a hang on one checkpoint.

The test sets an environment variable that names the fault and a fragment of
the checkpoint's path; every process that converts, copies ahead or plans a
checkpoint whose path holds the fragment then kills itself with the signal,
or sleeps. `install` patches those entry points; it is called by the
test-only model factories (`batch_factories`), and at the start of every
Python process by `worker_faults_site/sitecustomize.py` when a test puts that
directory on `PYTHONPATH` (`in_every_process`): copy workers build no model,
and every worker opens a checkpoint before it builds one, so a factory alone
does not reach them. The library holds no test code.

Example:

    monkeypatch.setenv(worker_faults.CRASH_VARIABLE, "SIGABRT:run1/model.ckpt-1")
"""

import os
import signal
import time

# "SIGNAL_NAME:path-fragment": the process kills itself with that signal on that checkpoint.
CRASH_VARIABLE = "TF1_MIGRATE_TEST_CRASH_ON"
# "path-fragment": the process sleeps (makes no progress) on that checkpoint.
HANG_VARIABLE = "TF1_MIGRATE_TEST_HANG_ON"
# A file each process that hangs appends its process id to.
HANG_LOG_VARIABLE = "TF1_MIGRATE_TEST_HANG_LOG"
_HANG_SECONDS = 3600
_installed = []


def in_every_process(patch):
    """Has every Python process started from now on install the faults (`patch`: a
    `pytest.MonkeyPatch`), through `PYTHONPATH`."""
    tests = os.path.dirname(os.path.abspath(__file__))
    patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [
        os.path.join(tests, "worker_faults_site"), tests, os.environ.get("PYTHONPATH")])))


def _fault(path):
    crash = os.environ.get(CRASH_VARIABLE)
    if crash:
        signal_name, _, fragment = crash.partition(":")
        if fragment in str(path):
            os.kill(os.getpid(), signal.Signals[signal_name])
    hang = os.environ.get(HANG_VARIABLE)
    if hang and hang in str(path):
        log = os.environ.get(HANG_LOG_VARIABLE)
        if log:
            with open(log, "a", encoding="utf-8") as file:
                file.write(f"{os.getpid()}\n")
        time.sleep(_HANG_SECONDS)


def install():
    """Makes this process meet the faults the environment names; once, and only if it names one."""
    if _installed or not (os.environ.get(CRASH_VARIABLE) or os.environ.get(HANG_VARIABLE)):
        return
    _installed.append(True)
    from migrate import pipeline
    from migrate.batch import copy_plan

    opened, executed, staged = pipeline.open_checkpoint, copy_plan.execute, copy_plan.stage
    finished = copy_plan.StagedCopy.finish

    def open_checkpoint(checkpoint, options=None, **keywords):
        _fault(checkpoint)
        return opened(checkpoint, options, **keywords)

    def execute(plan, prefix, output, **keywords):
        _fault(prefix)
        return executed(plan, prefix, output, **keywords)

    def stage(prefix, output, **keywords):
        _fault(prefix)
        return staged(prefix, output, **keywords)

    def finish(self, plan, **keywords):
        _fault(self.prefix)
        return finished(self, plan, **keywords)

    pipeline.open_checkpoint = open_checkpoint
    copy_plan.execute = execute
    copy_plan.stage = stage
    copy_plan.StagedCopy.finish = finish
