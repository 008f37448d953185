"""The command line's own behaviour: --help, one-line usage errors, library errors, scripts."""

import os
import re
import select
import subprocess
import sys
import time

import pytest

import docs_text
from migrate import cli
from migrate import errors

REPOSITORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
SCRIPTS = {"convert_checkpoint.py": "convert", "inspect_checkpoint.py": "inspect",
           "plan_conversion.py": "plan", "verify_conversion.py": "verify"}
TENSORFLOW_MODULES = {"tensorflow", "keras", "tf_keras", "tensorboard"}


def _error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def test_help_lists_the_commands_and_exits_0(cli_in_process):
    result = cli_in_process("--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("Moves trained weights")
    assert "Usage: python -m migrate COMMAND [--flags]" in result.stdout
    for name, command in cli.COMMANDS.items():
        assert f"  {name:<9} {command.summary}\n" in result.stdout
    assert "  --checkpoint" not in result.stdout  # Flags belong to each command's --help.


@pytest.mark.parametrize("arguments, shown, hidden", [
    (["inspect", "--help"],
     ["--checkpoint: Legacy TF1 checkpoint prefix", "--builder: For a checkpoint without .meta",
      "--[no]use_meta: Read variable roles", "--[no]json", "--report", "--[no]verbose"],
     ["--output", "--table", "--workers", "--keep", "--zoo"]),
    (["convert", "-h"],
     ["--[no]overwrite: Replace an existing output directory.", "--[no]dry_run",
      "--keep: <trainable|model_state>: What the output carries", "--zoo", "--table", "--model",
      "Needs: --checkpoint; --output (unless --dry_run); --table and --model, or --zoo."],
     ["--converted", "--workers", "--input_dir", "--workdir"]),
    (["check", "--output=somewhere", "--help"],
     ["Usage: python -m migrate check --output=... [--flags]", "--output: Output directory"],
     ["--checkpoint", "--keep"]),
    (["suggest", "--help"],
     ["Usage: python -m migrate suggest --checkpoint=... --model=... --output=... [--flags]",
      "--output_tensor: Legacy output tensor", "--[no]overwrite", "--keep", "--feed",
      "Needs: --checkpoint; --model; --output."],
     ["--table", "--converted", "--zoo", "--verify", "--layers"]),
    (["batch", "--help"],
     ["--workers: Worker processes", "--runner: <local|beam>", "--beam_options", "--input_dir"],
     ["--checkpoint", "--output:", "--overwrite"]),
])
def test_command_help_shows_that_commands_flags_only(cli_in_process, arguments, shown, hidden):
    result = cli_in_process(*arguments)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"Usage: python -m migrate {arguments[0]} ")
    for text in shown:
        assert text in result.stdout
    for flag in hidden:
        assert f"  {flag}" not in result.stdout
    listed = set(re.findall(r"^  --(?:\[no\])?(\w+)", result.stdout, re.MULTILINE))
    assert listed == set(cli.COMMANDS[arguments[0]].flag_names)


@pytest.mark.parametrize("arguments, message, hint", [
    ([], "Expected a command, one of inspect, plan, convert, batch, verify, check, lint, suggest, "
     "port, zoo, demo. Received: nothing", "python -m migrate --help"),
    (["frobnicate", "--checkpoint=c"], "Expected a command, one of inspect, plan, convert, batch, "
     "verify, check, lint, suggest, port, zoo, demo. Received: frobnicate", "python -m migrate --help"),
    (["convert", "--bogus"], "`convert` has no flag --bogus.", "python -m migrate convert --help"),
    (["convert", "--ouptut=o"], "`convert` has no flag --ouptut. Did you mean --output?",
     "python -m migrate convert --help"),
    (["inspect", "--checkpoint=c", "--output=o"],
     "`inspect` does not use --output (a flag of convert, check, suggest, port).",
     "python -m migrate inspect --help"),
    (["zoo", "--noverbose", "--nooverwrite"], "`zoo` does not use --overwrite (a flag of convert, "
     "suggest, port).",
     "python -m migrate zoo --help"),
    (["convert"], "`convert` needs --checkpoint; --output (unless --dry_run); --table and "
     "--model, or --zoo.", "python -m migrate convert --help"),
    (["verify", "--checkpoint=c", "--converted=o", "--model=m:build"],
     "`verify` needs --output_tensor, or --zoo (unless --checkpoint is a SavedModel: its "
     "signature names the tensors).",
     "python -m migrate verify --help"),
    (["check"], "`check` needs --output.", "python -m migrate check --help"),
    (["suggest", "--checkpoint=c"], "`suggest` needs --model; --output.",
     "python -m migrate suggest --help"),
    (["suggest", "--checkpoint=c", "--model=m:b", "--output=t.toml", "--input_tensor=x:0"],
     "--input_tensor is for parity, which needs --output_tensor.",
     "python -m migrate suggest --help"),
    (["plan", "--checkpoint=c", "--table=t.toml"], "`plan` needs --model, or --zoo.",
     "python -m migrate plan --help"),
    (["convert", "--checkpoint=c", "--output=o", "--zoo=small_convnet", "--keep=all"],
     "flag --keep=all: value should be one of <trainable|model_state>",
     "python -m migrate convert --help"),
    (["batch", "--input_dir=i", "--output_dir=o", "--zoo=small_convnet", "--workers=-1"],
     "flag --workers=-1: -1 is not a non-negative integer", "python -m migrate batch --help"),
    (["batch", "--input_dir=i", "--output_dir=o", "--zoo=small_convnet", "--runner=beam",
      "--workers=2"], "--workers is for --runner=local; give Beam its own worker options in "
     "--beam_options.", "python -m migrate batch --help"),
    (["verify", "--checkpoint=c", "--converted=o", "--zoo=small_convnet", "--input_shape=a,3"],
     "Expected input shapes such as '10,1;10,1' (sizes separated by commas, inputs by "
     "semicolons). Received: input_shapes='a,3'", "python -m migrate verify --help"),
    (["inspect", "--checkpoint=c", "stray"], "Unexpected arguments: stray",
     "python -m migrate inspect --help"),
])
def test_a_usage_error_is_one_line_and_exit_2(cli_in_process, tmp_path, arguments, message,
                                              hint):
    result = cli_in_process(*arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert _error_line(result) == f"error: {message} (see `{hint}`)"
    assert result.stdout == ""
    assert os.listdir(tmp_path) == []


def test_a_mistyped_zoo_name_is_the_librarys_error_as_a_usage_error(cli_in_process):
    result = cli_in_process("convert", "--checkpoint=c", "--output=o", "--zoo=small_convnt")
    assert result.returncode == 2
    line = _error_line(result)
    assert "Received: zoo='small_convnt'" in line and "small_convnet" in line
    assert line.endswith("(see `python -m migrate convert --help`)")


@pytest.mark.parametrize("arguments", [
    ["convert", "--checkpoint=c", "--output=o", "--zoo=small_convnt"],
    ["inspect", "--checkpoint=c", "--workers=2"],
    ["plan", "--checkpoint=c"],
    ["convert", "--no_such_flag"],
])
def test_a_usage_error_exits_2_without_importing_tensorflow(arguments):
    # The real process: its exit status, its whole standard error, its imports.
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "migrate", *arguments],
                            capture_output=True, text=True, timeout=120, check=False)
    imported = {line.rpartition("|")[2].strip().split(".")[0]
                for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "migrate" in imported, result.stderr[-2000:]
    assert imported.isdisjoint(TENSORFLOW_MODULES), sorted(imported & TENSORFLOW_MODULES)
    assert result.returncode == 2
    others = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert len(others) == 1 and others[0].startswith("error: "), others
    assert "Traceback" not in result.stderr and "FATAL" not in result.stderr


@pytest.mark.parametrize("raised, code, line", [
    (errors.TableError("Table t.toml is not valid TOML.", option="table"), 1,
     "error: Table t.toml is not valid TOML. (see --table)"),
    # An option the command has no flag for gets no flag hint.
    (errors.OutputError("Output o already exists.", option="overwrite"), 1,
     "error: Output o already exists."),
    (errors.ArgumentError("Expected a table path. Received: table=''", option="table"), 2,
     "error: Expected a table path. Received: table='' "
     "(see --table in `python -m migrate lint --help`)"),
    (errors.ArgumentError("Expected something else. Received: x=1"), 2,
     "error: Expected something else. Received: x=1 (see `python -m migrate lint --help`)"),
    (RuntimeError("boom\nand more"), 1,
     "error: RuntimeError: boom (run with --verbose for the traceback)"),
])
def test_library_errors_are_one_line_with_the_flag_hint(cli_in_process, monkeypatch, raised,
                                                        code, line):
    from migrate.mapping import lint

    def lint_table(path, names):
        raise raised

    monkeypatch.setattr(lint, "lint_table", lint_table)
    result = cli_in_process("lint", "--table=t.toml")
    assert result.returncode == code
    assert _error_line(result) == line
    verbose = cli_in_process("lint", "--table=t.toml", "--verbose")
    assert verbose.returncode == code
    assert verbose.stderr.startswith("Traceback (most recent call last):")
    assert verbose.stderr.strip().splitlines()[-1] == line


@pytest.mark.parametrize("source, message", [
    ("import os\n\nraise RuntimeError('broken at import')\n",
     "error: Cannot import model module '{module}': broken at import. Expected an importable "
     "module. Received: model='{module}:build'"),
    ("def build():\n    return helper()\n\n\ndef helper():\n    raise RuntimeError('broken in "
     "build')\n", "error: The model factory failed: broken in build. Expected a factory that "
     "returns a built Keras model. Received: factory=build"),
])
def test_a_users_own_model_error_keeps_its_traceback_under_verbose(cli_in_process, tmp_path,
                                                                   monkeypatch, source, message):
    module = f"user_model_{len(source)}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    arguments = ["verify", "--checkpoint=c", "--converted=o", f"--model={module}:build",
                 "--input_tensor=images:0", "--output_tensor=logits:0"]
    result = cli_in_process(*arguments)
    assert result.returncode == 1
    assert _error_line(result) == message.format(module=module)
    monkeypatch.delitem(sys.modules, module, raising=False)
    result = cli_in_process(*arguments, "--verbose")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    # The user's own file and line and their exception, then the library's error.
    assert f'{tmp_path / module}.py", line ' in result.stderr
    user_error = lines.index(next(line for line in lines if line.startswith("RuntimeError: ")))
    assert lines[user_error] == f"RuntimeError: {source.split(chr(39))[1]}"
    assert lines[user_error + 1] == "Traceback (most recent call last):"
    assert lines[-2].startswith("migrate.errors.ModelError: ")
    assert lines[-1] == message.format(module=module)


@pytest.mark.parametrize("script, command", sorted(SCRIPTS.items()))
def test_scripts_list_their_flags_in_help(script, command):
    path = os.path.join(REPOSITORY, "scripts", script)
    result = subprocess.run([sys.executable, path, "--help"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"Usage: python {path} ")
    assert result.stdout == cli.command_help(command, f"python {path}")
    for name in cli.COMMANDS[command].flag_names:
        assert re.search(rf"^  --(\[no\])?{name}: \S", result.stdout, re.MULTILINE), name
    assert "helpfull" not in result.stdout


def test_a_script_names_itself_in_its_usage_errors():
    path = os.path.join(REPOSITORY, "scripts", "inspect_checkpoint.py")
    result = subprocess.run([sys.executable, path, "--checkpoint=c", "--output=o"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert _error_line(result) == ("error: `inspect` does not use --output (a flag of convert, "
                                   f"check, suggest, port). (see `python {path} --help`)")


def _printed_commands():
    """Yields `(command, line, flags)` of each `python -m migrate` command the docs print."""
    for _, command in docs_text.all_commands():
        if command.exit_code == 2:  # A usage error, shown on purpose.
            continue
        line = command.line
        # Beam's own flags travel inside one quoted --beam_options value.
        line = re.sub(r'--beam_options="[^"]*"', "--beam_options", line)
        words = line.split()
        if len(words) >= 4:
            yield words[3], line, re.findall(r"--(\w+)", line)


def test_every_printed_command_uses_its_commands_flags_and_has_what_it_needs():
    commands = list(_printed_commands())
    assert {name for name, _, _ in commands} >= {"inspect", "plan", "convert", "verify",
                                                 "check", "lint", "zoo", "batch"}
    for name, line, used in commands:
        command = cli.COMMANDS[name]
        # A boolean flag is also written --noNAME.
        used = [flag[2:] if flag.startswith("no") and flag[2:] in command.flag_names else flag
                for flag in used]
        assert set(used) <= set(command.flag_names), (line, set(used) - set(command.flag_names))
        given = set(re.findall(r"--(\w+)", re.sub(r"\[[^\]]*\]", "", line)))
        for requirement in command.requirements:
            assert any(set(group) <= given for group in requirement.alternatives), (
                line, requirement.describe())


def test_the_documented_usage_error_example_is_what_the_command_prints(cli_in_process):
    (example,) = [line.strip() for line in docs_text.page("command-line").splitlines()
                  if line.strip().startswith("error: `")]
    result = cli_in_process("inspect", "--checkpoint=c", "--output=o")
    assert result.returncode == 2 and _error_line(result) == example


def test_on_a_terminal_a_status_line_shows_at_once_and_is_erased_before_the_error(tmp_path):
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "migrate", "convert", f"--checkpoint={tmp_path / 'missing'}",
         "--zoo=small_convnet", f"--output={tmp_path / 'out'}"],
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, cwd=REPOSITORY)
    os.close(follower)
    written = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not select.select([leader], [], [], deadline - time.monotonic())[0]:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # The terminal closes when the process ends.
            break
        if not chunk:
            break
        written += chunk
    os.close(leader)
    if process.poll() is None:
        process.kill()
    assert process.wait(timeout=10) == 1, written
    text = written.decode()
    status = "\rconvert: starting (TensorFlow import, reading the checkpoint) ...\x1b[K"
    assert text.startswith(status), text
    # Erased, then the one error line.
    rest = text[len(status):]
    assert rest.startswith("\r\x1b[Kerror: No checkpoint at "), rest
    assert rest.count("\n") == 1, rest


def test_the_status_line_writes_nothing_off_a_terminal_and_erases_itself_once():
    import io

    from migrate import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    status = progress.StatusLine(stream=terminal)
    status.show("convert: starting ...")
    status.clear()
    status.clear()
    assert terminal.getvalue() == "\rconvert: starting ...\x1b[K\r\x1b[K"
    silent = io.StringIO()
    progress.StatusLine(stream=silent).show("convert: starting ...")
    assert silent.getvalue() == ""
