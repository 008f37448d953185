"""Damaged and hostile inputs, generated on the spot, and the exact outcome owed to each.

Every `Case` builds its inputs in a fresh directory (from a healthy legacy
checkpoint, or from tensors written here), names the `python -m migrate`
command to run, and states the outcome: exit code and a text the one
`error: ...` line must contain (or, for inputs that must convert, a text of
the normal output). `run_case` runs a case and `check_outcome` lists every
way the outcome falls short of what a bad input is owed:

- the expected exit code, and exactly one `error:` line on standard error
  (a plan's `  - ` problem lines may accompany it; off a terminal no progress line does);
- no Python traceback, no native crash (`Check failed`, a signal);
- nothing left behind: no output, no `.NAME.partial-*` directory, nothing
  changed anywhere in the case directory except the output of a success;
- the input files byte-identical afterwards.

Also here: the byte-level, table-level and structure-aware `.index` mutations
that `scripts/fuzz.py` draws from. Used by tests/test_bad_inputs.py,
tests/test_safety.py, tests/test_properties.py, scripts/robustness_report.py
and scripts/fuzz.py.

Example:

    case = CASES_BY_NAME["data_flipped"]
    outcome = run_case(case, "/tmp/work", seed_prefix="legacy/model.ckpt-3")
    assert check_outcome(case, outcome) == []
"""

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
from typing import Callable

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_MODEL = "small_convnet"
INPUT_DIRECTORY = "input"
OUTPUT_NAME = "out"
PARTIAL_MARK = ".partial-"  # migrate.output.atomic.PARTIAL_MARK; not imported, so no TensorFlow here.
ERROR_PREFIX = "error: "
# Standard error lines that may accompany the one error line: a plan's problems. (Off a
# terminal convert prints no progress, so an error stays one line.)
ALLOWED_STDERR_PREFIXES = ("  - ",)
# migrate.planning.plan.side_by_side_lines: a plan error's unmapped sources beside unfilled targets.
SIDE_BY_SIDE_HEADER = "unmapped sources and unfilled targets, paired by shape:"
# TensorFlow's prefix for errors raised inside its functions: noise to a user.
TENSORFLOW_NOISE = "{{function_node"
CRASH_MARKS = ("Traceback (most recent call last)", "Fatal Python error", "Check failed",
               "Segmentation fault", "core dumped")
# Limits a case can ask for, applied in the child before it runs.
NO_SPACE = "no_space"  # RLIMIT_FSIZE: writes past a few bytes fail like a full disk.
READ_ONLY = "read_only"  # Without CAP_DAC_OVERRIDE, root too obeys a 0555 directory.
FILE_SIZE_LIMIT_BYTES = 1024
# Linux capability numbers and prctl option (linux/capability.h, linux/prctl.h).
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2
_PR_CAPBSET_DROP = 24
RUN_SECONDS = 600
TINY_MODEL_MODULE = "tiny_model"
TINY_WIDTH = 8
LARGE_WIDTH = 512  # A 512x512 float32 kernel is 1 MiB: large enough for migrate.direct_read.


# Byte, table and index mutations -------------------------------------------

def mutate(data, rng):
    """Returns `(mutated bytes, description)` after one to three random edits."""
    data = bytearray(data)
    steps = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("flip", "byte", "truncate", "zero", "duplicate", "insert", "delete"))
        if not data:
            kind = "insert"
        position = rng.randrange(len(data)) if data else 0
        if kind == "flip":
            data[position] ^= 1 << rng.randrange(8)
        elif kind == "byte":
            data[position] = rng.choice((0x00, 0xFF, 0x7F, 0x80, 0x01, rng.randrange(256)))
        elif kind == "truncate":
            del data[position:]
        elif kind == "zero":
            length = rng.randint(1, 64)
            data[position:position + length] = bytes(len(data[position:position + length]))
        elif kind == "duplicate":
            length = rng.randint(1, 64)
            data[position:position] = data[position:position + length]
        elif kind == "insert":
            data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        else:
            del data[position:position + rng.randint(1, 64)]
        steps.append(f"{kind}@{position}")
    return bytes(data), "+".join(steps)


# Regex fragments that stress the table's pattern checks, and transforms that
# stress its transform grammar.
REGEX_FRAGMENTS = (
    "(.*)", ".*", "+", "*", "?", "|", "(", ")", "[", "]", "\\\\", "{1000}", "{0,64}", "(a|aa)+",
    "(?P<g>", "(?=", "\\\\1", "\\\\g<0>", "(?:a?){30}", ".*.*.*", "[^/]*", "$", "^", "\\\\b")
TRANSFORM_FRAGMENTS = (
    "reshape(-1)", "transpose(1, 0)", "cast(float64)", "squeeze()", "expand_dims(0)",
    "reshape(99999999999, 99999999999)", "transpose()", "frobnicate(1)", "cast(object)",
    "reshape(1,", "__import__('os')", "reshape(-1, -1)", "expand_dims(-99)")


def mutate_table(text, rng):
    """Returns `(mutated table bytes, description)`: edits of `match`, `transform`, or bytes."""
    if rng.random() < 0.3:
        data, description = mutate(text.encode("utf-8"), rng)
        return data, "bytes " + description
    lines = text.splitlines()
    candidates = [index for index, line in enumerate(lines)
                  if line.startswith(("match", "target", "transform"))] or [0]
    index = rng.choice(candidates)
    line = lines[index]
    if line.startswith("transform") or rng.random() < 0.15:
        fragment = rng.choice(TRANSFORM_FRAGMENTS)
        lines.insert(index + 1, f"transform = [{json.dumps(fragment)}]")
        description = f"transform {fragment!r} after line {index + 1}"
    else:
        quote, end = line.find("'"), line.rfind("'")
        fragment = rng.choice(REGEX_FRAGMENTS)
        if quote < 0 or end <= quote:
            lines[index] = line + fragment
        else:
            position = rng.randint(quote + 1, end)
            lines[index] = line[:position] + fragment + line[position:]
        description = f"line {index + 1}: {lines[index]!r}"
    return ("\n".join(lines) + "\n").encode("utf-8"), description


# A checkpoint `.index` is a LevelDB-style table whose blocks carry a CRC32C,
# so random bytes rarely get past TensorFlow's block reader. The helpers below
# decode the table, let a record be edited, and encode it again with valid
# checksums, so the edit reaches TensorFlow's parsing of the record itself.

_CRC32C_TABLE = []
for _byte in range(256):
    _value = _byte
    for _ in range(8):
        _value = (_value >> 1) ^ 0x82F63B78 if _value & 1 else _value >> 1
    _CRC32C_TABLE.append(_value)
_TABLE_MAGIC = 0xdb4775248b80fb57
_TABLE_FOOTER_BYTES = 48
# Values a mutated integer field takes: edges of int32 and int64, negative
# numbers (as protobuf encodes them), sizes past any file.
INTERESTING_INTEGERS = (0, 1, 2, 7, 19, 20, 21, 23, 100, 255, 1000, 65535, 1 << 31,
                        (1 << 31) - 1, 1 << 32, 1 << 40, 1 << 62, (1 << 64) - 1, (1 << 64) - 2)


def crc32c(data):
    """Returns the CRC32C (Castagnoli) of `data`, as the table format uses."""
    value = 0xFFFFFFFF
    for byte in data:
        value = _CRC32C_TABLE[(value ^ byte) & 0xFF] ^ (value >> 8)
    return value ^ 0xFFFFFFFF


def _masked_crc(data):
    value = crc32c(data)
    return ((((value >> 15) | (value << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _encode_varint(value):
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _decode_varint(data, position):
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, position


def _read_block(data, handle, position=0):
    offset, position = _decode_varint(handle, position)
    size, position = _decode_varint(handle, position)
    return data[offset:offset + size], position


def _block_entries(block):
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    position, key, entries = 0, b"", []
    while position < limit:
        shared, position = _decode_varint(block, position)
        unshared, position = _decode_varint(block, position)
        length, position = _decode_varint(block, position)
        key = key[:shared] + block[position:position + unshared]
        entries.append((key, block[position + unshared:position + unshared + length]))
        position += unshared + length
    return entries


def _encode_block(entries):
    body, restarts = bytearray(), []
    for key, value in entries:
        restarts.append(len(body))  # Every entry a restart point: no shared key prefixes.
        body += _encode_varint(0) + _encode_varint(len(key)) + _encode_varint(len(value))
        body += key + value
    for restart in restarts or [0]:
        body += struct.pack("<I", restart)
    return bytes(body + struct.pack("<I", len(restarts or [0])))


def decode_table(data):
    """Returns `[(index key, [(key, value), ...]), ...]`: the blocks of a checkpoint `.index`."""
    footer = data[-_TABLE_FOOTER_BYTES:]
    _, position = _decode_varint(footer, 0)
    _, position = _decode_varint(footer, position)
    index_block, _ = _read_block(data, footer, position)
    return [(index_key, _block_entries(_read_block(data, handle)[0]))
            for index_key, handle in _block_entries(index_block)]


def encode_table(blocks):
    """Writes `decode_table`'s blocks as a table with valid checksums."""
    out = bytearray()

    def append_block(contents):
        handle = _encode_varint(len(out)) + _encode_varint(len(contents))
        out.extend(contents + b"\0" + struct.pack("<I", _masked_crc(contents + b"\0")))
        return handle

    index_entries = [(index_key, append_block(_encode_block(entries)))
                     for index_key, entries in blocks]
    metaindex = append_block(_encode_block([]))
    index = append_block(_encode_block(index_entries))
    footer = (metaindex + index).ljust(_TABLE_FOOTER_BYTES - 8, b"\0")
    return bytes(out + footer + struct.pack("<Q", _TABLE_MAGIC))


def edit_index_record(index_path, key, edit):
    """Rewrites one record of an `.index` with `edit(value bytes) -> bytes`, checksums valid."""
    with open(index_path, "rb") as file:
        blocks = decode_table(file.read())
    found = False
    for _, entries in blocks:
        for position, (record_key, value) in enumerate(entries):
            if record_key == key.encode("utf-8"):
                entries[position] = (record_key, edit(value))
                found = True
    if not found:
        raise KeyError(f"{index_path} has no record {key!r}")
    with open(index_path, "wb") as file:
        file.write(encode_table(blocks))


def _protobuf_fields(record):
    """Splits a serialized protobuf into `[(number, wire type, value)]`."""
    fields, position = [], 0
    while position < len(record):
        tag, position = _decode_varint(record, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, position = _decode_varint(record, position)
        elif wire_type == 2:
            length, position = _decode_varint(record, position)
            value = record[position:position + length]
            position += length
        elif wire_type in (1, 5):
            width = 8 if wire_type == 1 else 4
            value, position = record[position:position + width], position + width
        else:
            raise ValueError(f"wire type {wire_type}")
        fields.append((number, wire_type, value))
    return fields


def _serialize_protobuf(fields):
    out = bytearray()
    for number, wire_type, value in fields:
        out += _encode_varint(number << 3 | wire_type)
        if wire_type == 0:
            out += _encode_varint(value)
        elif wire_type == 2:
            out += _encode_varint(len(value)) + value
        else:
            out += value
    return bytes(out)


def _mutate_record(record, rng):
    """Sets one integer field (looking into shapes) to an interesting value, or edits bytes."""
    fields = _protobuf_fields(record)
    if not fields or rng.random() < 0.25:
        data, description = mutate(record, rng)
        return data, "bytes " + description
    index = rng.randrange(len(fields))
    number, wire_type, value = fields[index]
    if wire_type == 2 and value and rng.random() < 0.7:
        try:
            inner, description = _mutate_record(value, rng)
            fields[index] = (number, wire_type, inner)
            return _serialize_protobuf(fields), f"field {number}.{description}"
        except (ValueError, IndexError):
            pass
    if wire_type == 0:
        new = rng.choice(INTERESTING_INTEGERS)
        fields[index] = (number, 0, new)
        return _serialize_protobuf(fields), f"field {number}={new}"
    if rng.random() < 0.5:
        fields.append((number, wire_type, value))  # Repeated where one is expected.
        return _serialize_protobuf(fields), f"field {number} repeated"
    del fields[index]
    return _serialize_protobuf(fields), f"field {number} removed"


def mutate_index(data, rng):
    """Returns `(index bytes, description)` with one record edited and the checksums valid."""
    try:
        blocks = decode_table(data)
    except (IndexError, ValueError, struct.error):
        return mutate(data, rng)
    records = [(block, entry) for block, (_, entries) in enumerate(blocks)
               for entry in range(len(entries))]
    if not records:
        return mutate(data, rng)
    block, entry = rng.choice(records)
    key, value = blocks[block][1][entry]
    try:
        new_value, description = _mutate_record(value, rng)
    except (ValueError, IndexError):
        new_value, description = mutate(value, rng)
    blocks[block][1][entry] = (key, new_value)
    name = key.decode("utf-8", "replace") or "<header>"
    return encode_table(blocks), f"record {name!r}: {description}"


# Building inputs -------------------------------------------------------------

def write_checkpoint(prefix, tensors):
    """Writes a TF1-format (V2 bundle) checkpoint holding `tensors`, a dict of name to array."""
    import numpy as np
    import tensorflow as tf

    names = sorted(tensors)
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(np.asarray(tensors[name])) for name in names])
    return prefix


def read_checkpoint(prefix):
    """Returns every tensor of a checkpoint, by name."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def copy_checkpoint(prefix, directory):
    """Copies a checkpoint's files (and a fresh `checkpoint` state file) into `directory`."""
    os.makedirs(directory, exist_ok=True)
    source_directory, base = os.path.split(prefix)
    for name in os.listdir(source_directory):
        if name.startswith(base + "."):
            shutil.copyfile(os.path.join(source_directory, name), os.path.join(directory, name))
    write_state_file(directory, base)
    return os.path.join(directory, base)


def write_state_file(directory, target):
    with open(os.path.join(directory, "checkpoint"), "w", encoding="utf-8") as state:
        state.write(f'model_checkpoint_path: "{target}"\nall_model_checkpoint_paths: "{target}"\n')


def _units(width):
    return width // 2 if width == TINY_WIDTH else width


def model_module(width=TINY_WIDTH, layer="dense"):
    """Returns the source of a module whose `build()` makes a one-Dense-layer Keras 3 model."""
    return textwrap.dedent(f'''\
        """A one-layer Keras model for the robustness corpus."""
        import keras


        def build():
            inputs = keras.Input(({width},), name="features")
            outputs = keras.layers.Dense({_units(width)}, name={layer!r})(inputs)
            return keras.Model(inputs, outputs)
        ''')


def tiny_tensors(width=TINY_WIDTH, layer="dense", seed=0):
    """Returns a kernel and bias for `model_module(width, layer)`."""
    import numpy as np
    rng = np.random.default_rng(seed)
    units = _units(width)
    return {f"{layer}/kernel": rng.standard_normal((width, units)).astype("float32"),
            f"{layer}/bias": rng.standard_normal((units,)).astype("float32")}


def table_text(*rules):
    """Returns TOML for `rules`, each a dict of rule keys (`match`, `target`, ...)."""
    blocks = []
    for rule in rules:
        lines = ["[[rule]]"]
        for key, value in rule.items():
            lines.append(f"{key} = {_toml_value(value)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, str) and "'" not in value and "\n" not in value:
        return f"'{value}'"  # A literal string: backslashes stay as written.
    # JSON escapes are TOML escapes, as long as none is a surrogate pair.
    return json.dumps(value, ensure_ascii=False)


DENSE_TABLE = table_text({"match": "dense/(kernel|bias)", "target": "dense/\\1"})


@dataclasses.dataclass
class Inputs:
    """What a case's builder made; paths are absolute.

    Attributes:
        directory: the case's directory; nothing outside it may change.
        input_dir: where the input files live (checked byte for byte).
        values: placeholders for the command line: `checkpoint`, `table`,
            `model`, `output`, and any the builder adds.
        module_paths: directories a `--model` module is imported from.
    """

    directory: str
    input_dir: str
    values: dict
    module_paths: list = dataclasses.field(default_factory=list)


def _tiny_inputs(inputs, *, tensors=None, table=DENSE_TABLE, width=TINY_WIDTH, layer="dense",
                 checkpoint_dir=None, prefix_name="model.ckpt-1"):
    """Writes a small checkpoint, a table and a model module; fills the placeholders."""
    checkpoint_dir = checkpoint_dir or inputs.input_dir
    tensors = tiny_tensors(width, layer) if tensors is None else tensors
    prefix = write_checkpoint(os.path.join(checkpoint_dir, prefix_name), tensors)
    write_state_file(checkpoint_dir, prefix_name)
    table_path = os.path.join(inputs.input_dir, "table.toml")
    with open(table_path, "w", encoding="utf-8") as file:
        file.write(table)
    with open(os.path.join(inputs.input_dir, f"{TINY_MODEL_MODULE}.py"), "w") as file:
        file.write(model_module(width, layer))
    inputs.module_paths.append(inputs.input_dir)
    inputs.values.update(checkpoint=prefix, table=table_path, model=f"{TINY_MODEL_MODULE}:build")
    return prefix


def _seed_inputs(inputs, seed_prefix):
    """Copies the healthy legacy checkpoint into the input directory."""
    prefix = copy_checkpoint(seed_prefix, inputs.input_dir)
    inputs.values.update(checkpoint=prefix)
    return prefix


# Builders: each damages or shapes the inputs of one case -------------------

def _index_truncated(inputs, seed):
    prefix = _seed_inputs(inputs, seed)
    _truncate(prefix + ".index", os.path.getsize(prefix + ".index") // 2)


def _index_empty(inputs, seed):
    prefix = _seed_inputs(inputs, seed)
    _truncate(prefix + ".index", 0)


def _index_record_unparsable(inputs, seed):
    prefix = _seed_inputs(inputs, seed)
    # A length-delimited field whose length runs past the record: no protobuf.
    edit_index_record(prefix + ".index", "conv/kernel", lambda value: b"\x12\x7f" + value[:4])


def _index_negative_dimension(inputs, seed):
    from tensorflow.core.protobuf import tensor_bundle_pb2

    prefix = _seed_inputs(inputs, seed)

    def negative(value):
        entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
        entry.shape.dim[0].size = -2
        return entry.SerializeToString()
    edit_index_record(prefix + ".index", "conv/kernel", negative)


def _data_truncated(inputs, seed):
    prefix = _seed_inputs(inputs, seed)
    path = _data_path(prefix)
    _truncate(path, os.path.getsize(path) - 100)


def _data_flipped(inputs, seed):
    prefix = _seed_inputs(inputs, seed)
    path = _data_path(prefix)
    with open(path, "r+b") as file:
        data = bytearray(file.read())
        for position in range(0, len(data), 7):
            data[position] ^= 0x5A
        file.seek(0)
        file.write(data)


def _data_missing(inputs, seed):
    prefix = _seed_inputs(inputs, seed)
    os.remove(_data_path(prefix))


def _shard_missing(inputs, seed):
    import tensorflow as tf

    tensors = read_checkpoint(seed)
    staging = os.path.join(inputs.directory, "staging")
    names = sorted(tensors)
    halves = [write_checkpoint(os.path.join(staging, f"part{index}"),
                               {name: tensors[name] for name in names[index::2]})
              for index in range(2)]
    prefix = os.path.join(inputs.input_dir, os.path.basename(seed))
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=halves, destination_prefix=prefix,
                                  delete_old_dirs=False)
    shutil.rmtree(staging)
    shutil.copyfile(seed + ".meta", prefix + ".meta")
    os.remove(prefix + ".data-00001-of-00002")
    inputs.values.update(checkpoint=prefix)


def _state_file_nowhere(inputs, seed):
    _seed_inputs(inputs, seed)
    write_state_file(inputs.input_dir, "model.ckpt-999")
    inputs.values.update(checkpoint=inputs.input_dir)


def _state_file_garbage(inputs, seed):
    _seed_inputs(inputs, seed)
    with open(os.path.join(inputs.input_dir, "checkpoint"), "wb") as file:
        file.write(b"\x00\xffnot a CheckpointState {{{\n")
    inputs.values.update(checkpoint=inputs.input_dir)


def _directory_without_state_file(inputs, seed):
    _seed_inputs(inputs, seed)
    os.remove(os.path.join(inputs.input_dir, "checkpoint"))
    inputs.values.update(checkpoint=inputs.input_dir)


def _meta_of_another_model(inputs, seed):
    import tensorflow as tf

    prefix = _seed_inputs(inputs, seed)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.get_variable("encoder/embedding", [10, 4])
        tf.compat.v1.train.export_meta_graph(prefix + ".meta", graph=graph)


def _meta_truncated(inputs, seed):
    prefix = _seed_inputs(inputs, seed)
    _truncate(prefix + ".meta", os.path.getsize(prefix + ".meta") // 3)


def _mixed_dtypes(inputs, seed, table=DENSE_TABLE):
    import numpy as np
    tensors = tiny_tensors()
    tensors.update({"vocabulary": np.array([b"the", b"cat", b"", b"\xff\xfe"], dtype=object),
                    "counter": np.arange(4, dtype="int32"),
                    "flags/is_training": np.array([True, False, True, True])})
    _tiny_inputs(inputs, tensors=tensors, table=table)


def _string_to_float_weight(inputs, seed):
    table = table_text({"match": "dense/kernel", "target": "dense/kernel"},
                       {"match": "vocabulary", "target": "dense/bias"},
                       {"match": "dense/bias|counter|flags/.*", "drop": True})
    _mixed_dtypes(inputs, seed, table=table)


def _nonfinite(inputs, seed, width=TINY_WIDTH):
    import numpy as np
    tensors = tiny_tensors(width)
    kernel = tensors["dense/kernel"]
    kernel[0, 0], kernel[1, 1] = np.nan, np.inf
    _tiny_inputs(inputs, tensors=tensors, width=width)


def _nonfinite_large(inputs, seed):
    _nonfinite(inputs, seed, width=LARGE_WIDTH)


def _large_tensor_flipped(inputs, seed):
    prefix = _tiny_inputs(inputs, width=LARGE_WIDTH)
    path = _data_path(prefix)
    with open(path, "r+b") as file:
        file.seek(os.path.getsize(path) // 2)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0x01]))


def _table(text):
    def build(inputs, seed):
        _tiny_inputs(inputs, table=text)
    return build


def _table_bytes(data):
    def build(inputs, seed):
        _tiny_inputs(inputs)
        with open(inputs.values["table"], "wb") as file:
            file.write(data)
    return build


def _table_missing(inputs, seed):
    _tiny_inputs(inputs)
    os.remove(inputs.values["table"])


def _output_exists(inputs, seed):
    _tiny_inputs(inputs)
    os.makedirs(inputs.values["output"])
    with open(os.path.join(inputs.values["output"], "notes.txt"), "w") as file:
        file.write("someone else's file\n")


def _output_inside_input(inputs, seed):
    _tiny_inputs(inputs)
    inputs.values.update(output=inputs.input_dir)


def _output_read_only(inputs, seed):
    _tiny_inputs(inputs)
    locked = os.path.join(inputs.directory, "locked")
    os.makedirs(locked)
    os.chmod(locked, 0o555)
    inputs.values.update(output=os.path.join(locked, OUTPUT_NAME))


def _plain(inputs, seed):
    _tiny_inputs(inputs)


def _large(inputs, seed):
    _tiny_inputs(inputs, width=LARGE_WIDTH)


def _stale_partials(inputs, seed):
    _tiny_inputs(inputs)
    for suffix in ("0badc0de", "deadbeef"):
        stale = os.path.join(inputs.directory, f".{OUTPUT_NAME}{PARTIAL_MARK}{suffix}")
        os.makedirs(stale)
        with open(os.path.join(stale, "ckpt.index"), "wb") as file:
            file.write(b"half written")


def _unicode_names(inputs, seed):
    layer = "dénse layer ü 1"
    checkpoint_dir = os.path.join(inputs.input_dir, "in put", "чекпойнт 训练")
    os.makedirs(checkpoint_dir)
    tensors = {f"my model/{layer}/kernel 🙂": tiny_tensors()["dense/kernel"],
               f"my model/{layer}/bias": tiny_tensors()["dense/bias"]}
    table = table_text({"match": f"my model/{layer}/kernel 🙂", "target": f"{layer}/kernel"},
                       {"match": f"my model/{layer}/bias", "target": f"{layer}/bias"})
    _tiny_inputs(inputs, tensors=tensors, table=table, layer=layer,
                 checkpoint_dir=checkpoint_dir, prefix_name="modèle.ckpt-1")
    inputs.values.update(output=os.path.join(inputs.directory, "out put", "résultat ✓"))


def _hostile_sources(inputs, seed):
    tensors = tiny_tensors()
    tensors = {"../../escape/kernel": tensors["dense/kernel"], "/etc/bias": tensors["dense/bias"]}
    table = table_text({"match": r"\.\./\.\./escape/kernel", "target": "dense/kernel"},
                       {"match": "/etc/bias", "target": "dense/bias"})
    _tiny_inputs(inputs, tensors=tensors, table=table)


def _hostile_targets(inputs, seed):
    table = table_text({"match": "dense/kernel", "target": "../../../escape"},
                       {"match": "dense/bias", "target": "/tmp/escape"})
    _tiny_inputs(inputs, table=table)


def _name_too_long(inputs, seed):
    tensors = tiny_tensors()
    tensors["scope/" * 400 + "kernel"] = tensors["dense/bias"]
    _tiny_inputs(inputs, tensors=tensors)


def _model_factory_raises(inputs, seed):
    _tiny_inputs(inputs)
    with open(os.path.join(inputs.input_dir, "broken_model.py"), "w") as file:
        file.write("def build():\n    raise RuntimeError('the factory is broken')\n")
    inputs.values.update(model="broken_model:build")


def _data_path(prefix):
    return prefix + ".data-00000-of-00001"


def _truncate(path, size):
    with open(path, "r+b") as file:
        file.truncate(size)


# The corpus -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Step:
    """One command of a case.

    Attributes:
        arguments: `python -m migrate` arguments; `{checkpoint}`, `{table}`,
            `{model}`, `{output}` and `{input}` are filled from the inputs.
        code: the expected exit code (-9: killed by SIGKILL on purpose).
        message: text the one `error:` line must contain (code 1 or 2), or
            that standard output must contain (code 0).
        limit: `NO_SPACE` or `READ_ONLY`, applied to the child process.
        kill_before_manifest: SIGKILL the process when it is about to write
            its manifest: the checkpoint is half-written under a temporary name.
        output_expected: whether the output exists after this step.
        error_line: whether a failure must say so in one `error:` line; a
            batch instead reports each failed checkpoint in its summary, so
            its `message` is looked for in standard output.
    """

    arguments: tuple
    code: int
    message: str
    limit: str | None = None
    kill_before_manifest: bool = False
    output_expected: bool = False
    error_line: bool = True


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: how to build it and what each command must do with it.

    Attributes:
        may_remove: names in the case directory the commands are expected
            to remove (a killed run's temporary directories).
    """

    name: str
    description: str
    build: Callable
    steps: tuple
    may_remove: tuple = ()

    @property
    def in_process(self):
        """Whether the case can run inside the test process (no limits, no kill)."""
        return all(step.limit is None and not step.kill_before_manifest for step in self.steps)


ZOO = ("--zoo=small_convnet",)
TABLE_AND_MODEL = ("--table={table}", "--model={model}")


def _convert(*extra, table_and_model=TABLE_AND_MODEL):
    return ("convert", "--checkpoint={checkpoint}", *table_and_model, "--output={output}", *extra)


def _failing(arguments, message, **options):
    return (Step(arguments, 1, message, **options),)


def _succeeding(arguments, message, **options):
    return (Step(arguments, 0, message, output_expected=True, **options),)


CASES = (
    # Checkpoint files.
    Case("index_truncated", "the .index cut in half", _index_truncated,
         _failing(_convert(table_and_model=ZOO), "Cannot read checkpoint")),
    Case("index_empty", "a 0-byte .index", _index_empty,
         _failing(_convert(table_and_model=ZOO), "Cannot read checkpoint")),
    Case("index_record_unparsable",
         "an .index record that is no BundleEntryProto, block checksums valid (TensorFlow aborts)",
         _index_record_unparsable,
         _failing(_convert(table_and_model=ZOO),
                  "is damaged: the record of 'conv/kernel' is not a valid BundleEntryProto")),
    Case("index_negative_dimension",
         "an .index record with shape [-2, ...], checksums valid (TensorFlow aborts)",
         _index_negative_dimension,
         _failing(_convert(table_and_model=ZOO),
                  "is damaged: tensor 'conv/kernel' has a negative dimension in its shape "
                  "[-2, 3, 3, 4]")),
    Case("data_truncated", "the data shard 100 bytes short (after the converted weights)",
         _data_truncated,
         _failing(_convert(table_and_model=ZOO),
                  "is truncated; copy the checkpoint again. Expected at least")),
    Case("data_flipped", "every 7th byte of the data shard flipped", _data_flipped,
         _failing(_convert(table_and_model=ZOO), "Checksum does not match")),
    Case("data_missing", "the only data shard deleted", _data_missing,
         _failing(_convert(table_and_model=ZOO), "has no usable data file")),
    Case("shard_missing", "shard 2 of 2 deleted", _shard_missing,
         _failing(_convert(table_and_model=ZOO), "is missing data shard(s)")),
    Case("state_file_nowhere", "a `checkpoint` state file naming a prefix that does not exist",
         _state_file_nowhere,
         _failing(_convert(table_and_model=ZOO),
                  "and no V1 checkpoint file). Checkpoints found, newest first: ")),
    Case("state_file_garbage", "a `checkpoint` state file of binary garbage", _state_file_garbage,
         _failing(_convert(table_and_model=ZOO), "cannot be parsed")),
    Case("directory_without_state_file", "a checkpoint directory without a state file",
         _directory_without_state_file,
         _failing(_convert(table_and_model=ZOO), "holds no `checkpoint` state file")),
    Case("meta_of_another_model", "a .meta exported from another model's graph",
         _meta_of_another_model,
         _failing(_convert(table_and_model=ZOO), "does not describe this checkpoint")),
    Case("meta_truncated", "the .meta cut to a third", _meta_truncated,
         _failing(_convert(table_and_model=ZOO), "Cannot import the graph")),
    # Tensors.
    Case("string_int_bool_tensors", "string, int32 and bool variables next to the weights",
         _mixed_dtypes,
         _failing(_convert(), "3 problem(s) (3 unknown role)")),
    Case("string_int_bool_inspected", "`inspect` lists string, int32 and bool variables",
         _mixed_dtypes,
         (Step(("inspect", "--checkpoint={checkpoint}"), 0, "vocabulary"),)),
    Case("string_into_float_weight", "a string tensor mapped onto a float32 weight",
         _string_to_float_weight,
         _failing(_convert(), "dtype mismatch: vocabulary [4] -> dense/bias [4]")),
    Case("nonfinite_refused", "a NaN and an Inf in a weight", _nonfinite,
         _failing(_convert(), "dense/kernel [8, 4] holds 2 NaN/Inf value(s); refusing")),
    Case("nonfinite_allowed", "the same with --allow_nonfinite: carried, and reported",
         _nonfinite,
         _succeeding(_convert("--allow_nonfinite"), "hold NaN/Inf: dense/kernel (2)")),
    Case("nonfinite_large_refused", "a NaN and an Inf in a 1 MiB weight (read in place)",
         _nonfinite_large,
         _failing(_convert(), "dense/kernel [512, 512] holds 2 NaN/Inf value(s); refusing")),
    Case("large_tensor_flipped", "one bit flipped in a 1 MiB weight (read in place)",
         _large_tensor_flipped,
         _failing(_convert(), "Checksum does not match")),
    # Tables.
    Case("table_invalid_regex", "a `match` that is not a regex",
         _table(table_text({"match": "dense/(kernel", "target": "dense/kernel"})),
         _failing(_convert(), "`match` 'dense/(kernel' is not a valid regex")),
    Case("table_nested_repeat_regex", "an exponential regex: a repeat inside a repeat",
         _table(table_text({"match": "(dense/|a+)+kernel", "target": "dense/kernel"})),
         _failing(_convert(), "inside an unbounded repetition")),
    Case("table_bounded_exponential_regex", "an exponential regex without nesting: (a?){30}a{30}",
         _table(table_text({"match": "(?:a?){30}a{30}|dense/(kernel|bias)",
                            "target": "dense/\\1"})),
         _failing(_convert(), "may need about 10^9 backtracking steps")),
    Case("table_polynomial_regex", "four trading repeats: (.*)/(.*)/(.*)/(.*)",
         _table(table_text({"match": "(.*)/(.*)/(.*)/(.*)", "target": "dense/kernel"})),
         _failing(_convert(), "may need about 10^12 backtracking steps")),
    Case("table_collision", "two rules landing on one target",
         _table(table_text({"match": "dense/kernel", "target": "dense/kernel"},
                           {"match": "dense/bias", "target": "dense/kernel"})),
         _failing(_convert(), "collision: dense/kernel [8, 4]: 2 sources land on this target")),
    Case("table_no_such_target", "a target the model does not have",
         _table(table_text({"match": "dense/kernel", "target": "dense/kernal"},
                           {"match": "dense/bias", "target": "dense/bias"})),
         _failing(_convert(), "no such target: dense/kernel [8, 4] -> dense/kernal ?")),
    Case("table_unknown_transform", "a transform nobody defined",
         _table(table_text({"match": "dense/(kernel|bias)", "target": "dense/\\1",
                            "transform": ["frobnicate(1)"]})),
         _failing(_convert(), "Unknown transform 'frobnicate'")),
    Case("table_shape_mismatch_after_transform", "transpose(1, 0) turns [8, 4] into [4, 8]",
         _table(table_text({"match": "dense/kernel", "target": "dense/kernel",
                            "transform": ["transpose(1, 0)"]},
                           {"match": "dense/bias", "target": "dense/bias"})),
         _failing(_convert(), "shape mismatch: dense/kernel [8, 4] -> dense/kernel [8, 4]: "
                              "rule 1 (match 'dense/kernel') gives shape [4, 8] after "
                              "transpose(1, 0)")),
    Case("table_unmapped_variable", "a table without a rule for the bias",
         _table(table_text({"match": "dense/kernel", "target": "dense/kernel"})),
         _failing(_convert(), "unmapped: dense/bias [4]: no rule matches this trainable")),
    Case("table_not_toml", "a table that is not TOML", _table("[[rule]\nmatch = \n"),
         _failing(_convert(), "is not valid TOML")),
    Case("table_not_utf8", "a table of bytes that are not UTF-8",
         _table_bytes(b"[[rule]]\nmatch = '\xff\xfe'\n"),
         _failing(_convert(), "is not valid TOML")),
    Case("table_missing", "a table path that does not exist", _table_missing,
         _failing(_convert(), "Cannot read mapping table")),
    # Outputs.
    Case("output_exists", "an output directory that already exists", _output_exists,
         _failing(_convert(), "already exists. Expected a new directory, or overwrite=True")),
    Case("output_contains_input", "--output is the input directory, with --overwrite",
         _output_inside_input,
         _failing(_convert("--overwrite"), "contains the input file")),
    Case("output_read_only", "the output's parent directory is read-only (mode 0555)",
         _output_read_only,
         _failing(_convert(), "is not writable", limit=READ_ONLY)),
    Case("output_no_space", "writes past 1 KiB fail (RLIMIT_FSIZE), as on a full disk", _large,
         _failing(_convert(), "File too large", limit=NO_SPACE)),
    Case("killed_mid_write", "SIGKILL while writing; then the next run; then `check`", _plain,
         (Step(_convert(), -9, "", kill_before_manifest=True),
          Step(_convert(), 0, "Wrote", output_expected=True),
          Step(("check", "--output={output}"), 0, "check OK", output_expected=True))),
    Case("stale_partial_directories", "`.out.partial-*` directories left by killed runs",
         _stale_partials,
         _succeeding(_convert(), "Wrote"), may_remove=(f".{OUTPUT_NAME}{PARTIAL_MARK}",)),
    # Names.
    Case("unicode_and_spaces", "spaces, accents, Cyrillic, CJK and emoji in variable, layer, "
         "directory and file names", _unicode_names,
         _succeeding(_convert(), "Wrote")),
    Case("hostile_source_names", "variables named '../../escape/kernel' and '/etc/bias'",
         _hostile_sources,
         _succeeding(_convert(), "Wrote")),
    Case("hostile_target_names", "table targets '../../../escape' and '/tmp/escape'",
         _hostile_targets,
         _failing(_convert(), "no such target: dense/bias [4] -> /tmp/escape ?")),
    Case("name_too_long", "a 2406-character variable name", _name_too_long,
         _failing(_convert(), "TF1 name is longer than 1024 characters")),
    # Models.
    Case("model_factory_raises", "a --model factory that raises", _model_factory_raises,
         _failing(_convert(), "The model factory failed: the factory is broken")),
    Case("model_not_module_callable", "--model without a callable part", _plain,
         _failing(("convert", "--checkpoint={checkpoint}", "--table={table}",
                   "--model=os.path", "--output={output}"),
                  "Expected a model factory as module:callable")),
)
CASES_BY_NAME = {case.name: case for case in CASES}


# Running and judging -----------------------------------------------------------

@dataclasses.dataclass
class StepOutcome:
    """What one command did."""

    arguments: list
    code: int
    stdout: str
    stderr: str
    seconds: float


@dataclasses.dataclass
class Outcome:
    """What a case did, and the state of its directory before and after."""

    case: str
    inputs: Inputs
    steps: list
    before: dict
    after: dict
    partials: list


def snapshot(directory):
    """Returns `{relative path: sha256 or "<dir>"}` for everything under `directory`."""
    found = {}
    for root, directories, names in os.walk(directory):
        for name in directories:
            path = os.path.join(root, name)
            found[os.path.relpath(path, directory)] = "<dir>"
        for name in names:
            path = os.path.join(root, name)
            if os.path.islink(path):
                found[os.path.relpath(path, directory)] = "<link>" + os.readlink(path)
                continue
            with open(path, "rb") as file:
                found[os.path.relpath(path, directory)] = hashlib.sha256(file.read()).hexdigest()
    return found


def prepare(case, root, seed_prefix):
    """Builds the case's inputs under `root/<case name>`; returns its `Inputs`."""
    directory = os.path.join(os.path.abspath(root), case.name)
    if os.path.exists(directory):
        _make_writable(directory)
        shutil.rmtree(directory)
    input_dir = os.path.join(directory, INPUT_DIRECTORY)
    os.makedirs(input_dir)
    inputs = Inputs(directory, input_dir, {"output": os.path.join(directory, OUTPUT_NAME),
                                           "input": input_dir})
    case.build(inputs, seed_prefix)
    return inputs


def _make_writable(directory):
    for root, directories, _ in os.walk(directory):
        for name in directories:
            os.chmod(os.path.join(root, name), 0o755)


def _child_setup(step):
    def setup():
        if step.limit == NO_SPACE:
            resource.setrlimit(resource.RLIMIT_FSIZE,
                               (FILE_SIZE_LIMIT_BYTES, FILE_SIZE_LIMIT_BYTES))
            # Without this the kernel kills the writer (SIGXFSZ) instead of
            # failing the write, which is what a full disk does.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        elif step.limit == READ_ONLY and os.geteuid() == 0:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
                if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
    return setup


# Runs `python -m migrate` with a SIGKILL as the manifest is about to be
# written: the checkpoint files are in the temporary directory by then.
_KILLING_MAIN = textwrap.dedent("""\
    import os, runpy, signal, sys
    from migrate import files
    from migrate.output import manifest as manifest_lib
    original = files.write_bytes
    def write_bytes(path, data):
        if os.path.basename(path) == manifest_lib.MANIFEST_NAME:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(path, data)
    files.write_bytes = write_bytes
    sys.argv = ["migrate", *sys.argv[1:]]
    runpy.run_module("migrate", run_name="__main__", alter_sys=True)
    """)


def command(arguments, *, kill_before_manifest=False):
    """Returns the argv that runs `python -m migrate arguments` (or the killing variant)."""
    if kill_before_manifest:
        return [sys.executable, "-c", _KILLING_MAIN, *arguments]
    return [sys.executable, "-m", "migrate", *arguments]


def environment(module_paths=()):
    """The child's environment: this repository and the case's modules importable, no .pyc."""
    child = dict(os.environ)
    child.pop("TF_USE_LEGACY_KERAS", None)
    child["PYTHONPATH"] = os.pathsep.join([*module_paths, REPOSITORY])
    child["PYTHONDONTWRITEBYTECODE"] = "1"
    child.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return child


def run_step_subprocess(step, arguments, inputs):
    started = time.monotonic()
    completed = subprocess.run(
        command(arguments, kill_before_manifest=step.kill_before_manifest),
        capture_output=True, text=True, cwd=inputs.directory,
        env=environment(inputs.module_paths), preexec_fn=_child_setup(step),
        timeout=RUN_SECONDS, check=False)
    return StepOutcome(arguments, completed.returncode, completed.stdout, completed.stderr,
                       round(time.monotonic() - started, 2))


def run_step_in_process(step, arguments, inputs):
    """Runs the command line's `main` in this process, as `python -m migrate` would."""
    from migrate import cli

    started = time.monotonic()
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_path = list(sys.path)
    sys.path[:0] = inputs.module_paths
    sys.modules.pop(TINY_MODEL_MODULE, None)
    sys.modules.pop("broken_model", None)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.run_command(arguments)
    finally:
        sys.path[:] = saved_path
    return StepOutcome(arguments, code, stdout.getvalue(), stderr.getvalue(),
                       round(time.monotonic() - started, 2))


def run_case(case, root, *, seed_prefix, in_process=False):
    """Builds a case and runs its steps; returns the `Outcome`.

    Args:
        case: a `Case`.
        root: directory under which the case gets its own directory.
        seed_prefix: a healthy legacy checkpoint (`small_convnet`).
        in_process: run the command line's `main` here instead of in a
            subprocess (only for `case.in_process` cases; faster, same code).
    """
    return execute(case, prepare(case, root, seed_prefix), in_process=in_process)


def execute(case, inputs, *, in_process=False):
    """Runs the steps of a prepared case; returns the `Outcome`."""
    before = snapshot(inputs.directory)
    steps = []
    for step in case.steps:
        arguments = [argument.format(**inputs.values) for argument in step.arguments]
        runner = run_step_in_process if in_process and case.in_process else run_step_subprocess
        steps.append(runner(step, arguments, inputs))
    after = snapshot(inputs.directory)
    partials = sorted(path for path in after if PARTIAL_MARK in os.path.basename(path))
    return Outcome(case.name, inputs, steps, before, after, partials)


def _without_side_by_side(lines):
    """Drops a plan error's side-by-side block: its header and the `  A  <->  B` lines under it."""
    kept, in_block = [], False
    for line in lines:
        if line == SIDE_BY_SIDE_HEADER:
            in_block = True
            continue
        if in_block and line.startswith("  ") and "  <->  " in line:
            continue
        in_block = False
        kept.append(line)
    return kept


def stderr_problems(stderr, code):
    """Lists what is wrong with a command's standard error for its exit code."""
    problems = [f"standard error shows {mark!r}" for mark in CRASH_MARKS if mark in stderr]
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    if code == 1:
        if len(errors) != 1:
            problems.append(f"expected one {ERROR_PREFIX!r} line, received {len(errors)}")
        others = [line for line in _without_side_by_side(lines)
                  if not line.startswith(ERROR_PREFIX)
                  and not line.startswith(ALLOWED_STDERR_PREFIXES)]
        if others:
            problems.append(f"unexpected standard error line(s): {others[:3]}")
    elif code == 0 and errors:
        problems.append(f"a successful run printed {errors[0]!r}")
    noisy = [line for line in errors if TENSORFLOW_NOISE in line]
    if noisy:
        problems.append(f"TensorFlow's internal node name in the error line: {noisy[0][:120]}")
    return problems


def check_outcome(case, outcome):
    """Returns every way the outcome differs from what the case expects (empty: all clean)."""
    problems = []
    output = outcome.inputs.values["output"]
    output_relative = os.path.relpath(output, outcome.inputs.directory)
    for number, (step, result) in enumerate(zip(case.steps, outcome.steps), 1):
        where = f"{' '.join(result.arguments[:1])} (step {number})"
        if result.code != step.code:
            problems.append(f"{where}: exit code {result.code}, expected {step.code}; "
                            f"stderr tail: {result.stderr.strip().splitlines()[-1:]}")
        if step.code >= 0 and step.error_line:
            problems += [f"{where}: {problem}" for problem in stderr_problems(result.stderr,
                                                                              result.code)]
        elif step.code >= 0:
            problems += [f"{where}: standard error shows {mark!r}" for mark in CRASH_MARKS
                         if mark in result.stderr]
        if step.code in (1, 2) and step.error_line:
            # The error line, and the plan's problem lines under it.
            error_lines = [line for line in result.stderr.splitlines()
                           if line.startswith((ERROR_PREFIX, "  - "))]
            error_lines = error_lines or result.stderr.splitlines()[-1:]
            if not any(step.message in line for line in error_lines):
                problems.append(f"{where}: error line {error_lines[:1]} does not contain "
                                f"{step.message!r}")
        elif step.code >= 0 and step.message not in result.stdout:
            problems.append(f"{where}: standard output does not contain {step.message!r}: "
                            f"{result.stdout[:200]!r}")
    last = case.steps[-1]
    existed = output_relative in outcome.before
    if last.output_expected and not os.path.isdir(output):
        problems.append(f"output missing: {output}")
    elif not last.output_expected and not existed and os.path.lexists(output):
        problems.append(f"output left behind: {output}")
    if outcome.partials:
        problems.append(f"partial output left behind: {outcome.partials}")
    changed = sorted(
        path for path in set(outcome.before) | set(outcome.after)
        if outcome.before.get(path) != outcome.after.get(path)
        and not (last.output_expected and (_under(path, output_relative)
                                           or _under(output_relative, path)))
        and not (path not in outcome.after and case.may_remove
                 and path.startswith(case.may_remove)))
    inputs_relative = os.path.relpath(outcome.inputs.input_dir, outcome.inputs.directory)
    modified = [path for path in changed if _under(path, inputs_relative)]
    if modified:
        problems.append(f"input files modified: {modified[:5]}")
    elsewhere = [path for path in changed if not _under(path, inputs_relative)
                 and not _under(path, output_relative)]
    if elsewhere:
        problems.append(f"files changed outside the output: {elsewhere[:5]}")
    return problems


def _under(path, directory):
    return path == directory or path.startswith(directory + os.sep)


def classify(case, outcome):
    """Sorts an outcome into the robustness report's counts.

    Returns:
        A dict of booleans: `clean` (every expectation met), `traceback`,
        `crash` (a signal or a native abort the case did not ask for),
        `partial` (output or temporary directory left behind by a failure),
        `inputs_modified`.
    """
    problems = check_outcome(case, outcome)
    crash = any((result.code < 0 and step.code >= 0)
                or any(mark in result.stderr for mark in CRASH_MARKS[1:])
                for step, result in zip(case.steps, outcome.steps))
    return {
        "clean": not problems,
        "traceback": any(CRASH_MARKS[0] in result.stderr for result in outcome.steps),
        "crash": crash,
        "partial": any(problem.startswith(("partial output", "output left behind"))
                       for problem in problems),
        "inputs_modified": any(problem.startswith("input files modified")
                               for problem in problems),
        "problems": problems,
    }


# Batch inputs (`python -m migrate batch`) ----------------------------------------

def _batch_tree(inputs, seed, *, damaged=False):
    """A training tree with one healthy checkpoint, symlink loops, and maybe a damaged one."""
    copy_checkpoint(seed, os.path.join(inputs.input_dir, "run1"))
    os.symlink(".", os.path.join(inputs.input_dir, "run1", "self"))
    os.symlink("..", os.path.join(inputs.input_dir, "run1", "up"))
    os.symlink("no_such_directory", os.path.join(inputs.input_dir, "dangling"))
    if damaged:
        from tensorflow.core.protobuf import tensor_bundle_pb2

        prefix = copy_checkpoint(seed, os.path.join(inputs.input_dir, "run2"))

        def negative(value):
            entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
            entry.shape.dim[0].size = -2
            return entry.SerializeToString()
        # Before migrate.bundle_index, this record made TensorFlow abort the process.
        edit_index_record(prefix + ".index", "conv/kernel", negative)


def _batch_loops(inputs, seed):
    _batch_tree(inputs, seed)


def _batch_damaged(inputs, seed):
    _batch_tree(inputs, seed, damaged=True)


BATCH = ("batch", "--input_dir={input}", "--output_dir={output}", "--zoo=small_convnet")
BATCH_CASES = (
    Case("batch_symlink_loops", "a training tree with symlink loops and a dangling link",
         _batch_loops,
         (Step(BATCH, 0, "converted", output_expected=True, error_line=False),)),
    Case("batch_damaged_checkpoint", "a batch where one checkpoint's index aborts TensorFlow",
         _batch_damaged,
         (Step(BATCH, 1, "is damaged: tensor 'conv/kernel' has a negative dimension",
               output_expected=True, error_line=False),)),
)
