"""Checks a TF checkpoint's `.index` in Python before TensorFlow's reader, which can abort on it.

TensorFlow's `CheckpointReader` CHECK-fails, killing the whole process with
SIGABRT rather than raising, on an `.index` whose records are well-formed
table blocks (valid CRC32C) but hold a `BundleEntryProto` that does not
parse, a negative dimension, too many dimensions, an element count that
overflows int64, or a dtype that is not a plain tensor type; found by
`scripts/fuzz.py`. Each record is checked here first, so such an index
becomes a one-line `CheckpointError`.

The same records give every tensor's shard, offset and size: a data shard
shorter than that is a truncated copy, which TensorFlow would only notice on
reading a tensor past the cut (so a conversion whose weights come first would
succeed silently).

The `.index` is a LevelDB-style table (tensorflow/core/lib/io/table) whose
empty key holds a `BundleHeaderProto` and every other key a
`BundleEntryProto` (tensorflow/core/util/tensor_bundle). Table structure
this reader does not understand makes it return None: TensorFlow's reader
then judges, and it reports broken blocks and footers as errors.

Example:

    summary = read_index(open("train/model.ckpt-3.index", "rb").read())
    if summary is not None and summary.problems:
        print("TensorFlow would abort on:", summary.problems[0])
"""

import dataclasses
import struct

# A table ends with its footer: a shorter file is no table.
FOOTER_BYTES = 48
_MAGIC = 0xdb4775248b80fb57
_BLOCK_TRAILER_BYTES = 5  # compression type, then a masked CRC32C
_UNCOMPRESSED = 0
_HEADER_KEY = b""
# TensorShape allows fewer than this many dimensions, and at most this many elements.
_MAX_DIMENSIONS = 254
_MAX_ELEMENTS = (1 << 63) - 1
# DataType values below this are tensor types; 101 and up are reference types.
_FIRST_REFERENCE_DTYPE = 100
# BundleEntryProto's field numbers: shard_id, offset, size; slices.
_ENTRY_LOCATION = (3, 4, 5)
_ENTRY_SLICES = 7
# Protobuf wire types of fixed size: 64 and 32 bits.
_FIXED_BYTES = {1: 8, 5: 4}
# DT_STRING, DT_RESOURCE, DT_VARIANT: their stored bytes are an encoding, not the values.
_NOT_PLAIN_DTYPES = frozenset({7, 20, 21})


@dataclasses.dataclass(frozen=True)
class IndexSummary:
    """What `read_index` found.

    Attributes:
        extents: `{shard id: bytes}`: the end of the last tensor in each data
            shard, i.e. the smallest size that shard's file can have.
        problems: records that would make TensorFlow's reader abort, each as
            one sentence naming the record.
        entries: `{key: BundleEntryProto}` of every record that parsed: where
            each tensor's bytes lie (shard, offset, size, masked CRC32C), or,
            for a partitioned variable, the slices it is stored in.
    """

    extents: dict
    problems: list
    entries: dict


@dataclasses.dataclass(frozen=True)
class StoredTensor:
    """Where one whole tensor's bytes lie in a V2 checkpoint's data files, from its `.index` entry.

    Attributes:
        key: the tensor's checkpoint key.
        checkpoint: the checkpoint's prefix.
        path: the data shard file.
        offset: where the bytes start in it.
        size: how many bytes.
        crc32c: the masked CRC32C the `.index` holds for those bytes.
    """

    key: str
    checkpoint: str
    path: str
    offset: int
    size: int
    crc32c: int


class StoredTensors:
    """Where a V2 checkpoint's tensors lie, from its `.index` entries and its data shards' paths.

    Args:
        prefix: the checkpoint's prefix (also an attribute).
        entries: `IndexSummary.entries`, or `read_layout`'s `EntryLayout`s.
        shard_paths: `{shard id: data file path}`.
    """

    def __init__(self, prefix, entries, shard_paths):
        self.prefix = prefix
        self._entries = entries
        self._shard_paths = shard_paths

    def tensor(self, name):
        """Returns the `StoredTensor` of a tensor stored whole as plain numbers, else None."""
        entry = self._entries.get(name)
        if entry is None or entry.slices or entry.dtype in _NOT_PLAIN_DTYPES:
            return None
        path = self._shard_paths.get(entry.shard_id)
        if path is None:
            return None
        return StoredTensor(name, self.prefix, path, entry.offset, entry.size, entry.crc32c)

    def slices(self, name):
        """Returns the `TensorSliceProto`s a partitioned variable is stored in, else None."""
        entry = self._entries.get(name)
        return list(entry.slices) if entry is not None and entry.slices else None


@dataclasses.dataclass(frozen=True)
class EntryLayout:
    """One `.index` record (a `BundleEntryProto`) decoded without TensorFlow.

    Attributes:
        dtype: the `DataType` enum value.
        shape: the dimensions.
        shard_id, offset, size: where the bytes lie.
        crc32c: their masked CRC32C.
        slices: the serialized `TensorSliceProto`s of a tensor stored in
            slices (a partitioned variable); empty for one stored whole.
    """

    dtype: int
    shape: tuple
    shard_id: int
    offset: int
    size: int
    crc32c: int
    slices: tuple


def entry_layout(value):
    """Decodes a serialized `BundleEntryProto` without TensorFlow; None when it does not decode.

    >>> entry_layout(bytes([0x08, 0x01, 0x12, 0x04, 0x12, 0x02, 0x08, 0x03, 0x28, 0x0c]))
    EntryLayout(dtype=1, shape=(3,), shard_id=0, offset=0, size=12, crc32c=0, slices=())
    """
    fields = _message_fields(value)
    if fields is None:
        return None
    shape = []
    for shape_bytes in fields.get(2, [b""]):
        dimensions = _message_fields(shape_bytes) if isinstance(shape_bytes, bytes) else None
        if dimensions is None:
            return None
        for dimension in dimensions.get(2, []):
            size = _message_fields(dimension) if isinstance(dimension, bytes) else None
            if size is None or not isinstance(size.get(1, [0])[-1], int):
                return None
            shape.append(size.get(1, [0])[-1])
    scalars = {}
    for number in (1, 3, 4, 5, 6):
        found = fields.get(number, [0])[-1]
        if not isinstance(found, int):
            return None
        scalars[number] = found
    return EntryLayout(dtype=scalars[1], shape=tuple(shape), shard_id=scalars[3],
                       offset=scalars[4], size=scalars[5], crc32c=scalars[6],
                       slices=tuple(fields.get(_ENTRY_SLICES, ())))


def read_layout(index_bytes):
    """Returns `{key: EntryLayout}` of every tensor an `.index` holds, read without TensorFlow.

    None when the bytes are not a table read here or a record does not
    decode (`read_index`, through TensorFlow's protocol buffers, then says why).
    """
    records = table_records(index_bytes)
    if records is None:
        return None
    layout = {}
    for key, value in records:
        if key == _HEADER_KEY:
            continue
        entry = entry_layout(value)
        if entry is None:
            return None
        layout[key.decode("utf-8", "backslashreplace")] = entry
    return layout


def extents_of(entries):
    """Returns `{shard id: bytes}`: the end of the last tensor in each data shard
    (`IndexSummary.extents`), from `BundleEntryProto`s or `EntryLayout`s."""
    extents = {}
    for entry in entries.values():
        extents[entry.shard_id] = max(extents.get(entry.shard_id, 0), entry.offset + entry.size)
    return extents


def _message_fields(message):
    """Returns `{field number: [values]}` of a protobuf message: ints for varint and fixed
    fields, bytes for length-delimited ones; None when the bytes are not a message."""
    found = _wire_fields(message)
    if found is None:
        return None
    fields = {}
    for number, _, value in found:
        fields.setdefault(number, []).append(value)
    return fields


def _wire_fields(message):
    """Returns a protobuf message's fields in order, as `(number, wire type, value)` with
    ints for varint and fixed fields and bytes for length-delimited ones; None when the
    bytes are not a message. The one parser `entry_layout` and `stored_extents` share."""
    found = []
    position = 0
    try:
        while position < len(message):
            tag, position = _varint(message, position)
            number, wire_type = tag >> 3, tag & 7
            if wire_type == 0:
                value, position = _varint(message, position)
            elif wire_type == 2:
                length, position = _varint(message, position)
                if position + length > len(message):
                    return None
                value, position = bytes(message[position:position + length]), position + length
            elif wire_type in _FIXED_BYTES:
                width = _FIXED_BYTES[wire_type]
                if position + width > len(message):
                    return None
                value = int.from_bytes(message[position:position + width], "little")
                position += width
            else:
                return None
            found.append((number, wire_type, value))
    except _Malformed:
        return None
    return found


class _Malformed(Exception):
    """The bytes are not a table this reader understands."""


def _varint(data, position):
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise _Malformed("varint runs past the end")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, position


def _block(data, handle_bytes, position=0):
    offset, position = _varint(handle_bytes, position)
    size, position = _varint(handle_bytes, position)
    end = offset + size
    if end + _BLOCK_TRAILER_BYTES > len(data):
        raise _Malformed("block runs past the end of the file")
    if data[end] != _UNCOMPRESSED:
        raise _Malformed("compressed block")
    return data[offset:end], position


def _entries(block):
    """Yields `(key, value)` of a table block (prefix-compressed keys, restart array at the end)."""
    if len(block) < 4:
        raise _Malformed("block too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise _Malformed("restart array larger than the block")
    position = 0
    key = b""
    while position < limit:
        shared, position = _varint(block, position)
        unshared, position = _varint(block, position)
        value_length, position = _varint(block, position)
        end = position + unshared + value_length
        if shared > len(key) or end > limit:
            raise _Malformed("entry runs past the block")
        key = key[:shared] + block[position:position + unshared]
        yield key, block[position + unshared:end]
        position = end


def _entry_problem(name, entry):
    """Returns why TensorFlow would abort on this `BundleEntryProto`, or None."""
    from tensorflow.core.framework import types_pb2

    sizes = [dimension.size for dimension in entry.shape.dim]
    if any(size < 0 for size in sizes):
        return f"tensor {name!r} has a negative dimension in its shape {sizes}"
    if len(sizes) >= _MAX_DIMENSIONS:
        return f"tensor {name!r} has {len(sizes)} dimensions (at most {_MAX_DIMENSIONS - 1})"
    elements = 1
    for size in sizes:
        elements *= size
    if elements > _MAX_ELEMENTS:
        return f"tensor {name!r} has more elements than int64 can count, shape {sizes}"
    if (not 0 < entry.dtype < _FIRST_REFERENCE_DTYPE
            or entry.dtype not in types_pb2.DataType.values()):
        return f"tensor {name!r} has dtype number {entry.dtype}, not a tensor type"
    return None


def table_records(index_bytes):
    """Returns every `(key, value)` record of an `.index` table in order, or None if malformed.

    Keys and values are bytes: the empty key's value is a serialized
    `BundleHeaderProto`, every other a `BundleEntryProto`.
    """
    data = bytes(index_bytes)
    try:
        if len(data) < FOOTER_BYTES:
            raise _Malformed("shorter than a footer")
        footer = data[-FOOTER_BYTES:]
        (magic,) = struct.unpack_from("<Q", footer, FOOTER_BYTES - 8)
        if magic != _MAGIC:
            raise _Malformed("bad magic number")
        _, position = _varint(footer, 0)  # The metaindex handle; a bundle's is empty.
        _, position = _varint(footer, position)
        index_block, _ = _block(data, footer, position)
        records = []
        for _, handle in _entries(index_block):
            block, _ = _block(data, handle)
            records.extend(_entries(block))
    except (_Malformed, struct.error):
        return None
    return records


def stored_extents(index_bytes):
    """Returns `{key: (shard id, offset, size)}` of the tensors an `.index` stores whole, or None.

    Read without TensorFlow (and before it is imported), for a read-ahead
    hint only: the records are not checked here (`read_index` does that), and
    None means the bytes are not a table read here.

    >>> stored_extents(b"not an index") is None
    True
    """
    records = table_records(index_bytes)
    if records is None:
        return None
    extents = {}
    for key, value in records:
        found = _wire_fields(value) if key != _HEADER_KEY else None
        # The last of each field wins, as in protobuf; a field that is not a varint counts
        # as present, with no value.
        fields = None if found is None else {
            number: field if wire_type == 0 else None for number, wire_type, field in found}
        # Field 7 holds a partitioned variable's slices; fields 3-5 shard, offset, size.
        if fields is None or _ENTRY_SLICES in fields:
            continue
        extents[key.decode("utf-8", "backslashreplace")] = tuple(
            fields.get(number) or 0 for number in _ENTRY_LOCATION)
    return extents


def read_index(index_bytes):
    """Reads every record of a checkpoint's `.index`.

    Args:
        index_bytes: the contents of a checkpoint's `.index` file.

    Returns:
        An `IndexSummary`, or None when the bytes are not a table this reader
        understands (TensorFlow's reader decides then).

    Example:

        summary = read_index(open("model.ckpt-3.index", "rb").read())
        assert os.path.getsize("model.ckpt-3.data-00000-of-00001") >= summary.extents[0]
    """
    from google.protobuf import message
    from tensorflow.core.protobuf import tensor_bundle_pb2

    records = table_records(index_bytes)
    if records is None:
        return None
    problems = []
    entries = {}
    for key, value in records:
        name = key.decode("utf-8", "backslashreplace")
        record_type = (tensor_bundle_pb2.BundleHeaderProto if key == _HEADER_KEY
                       else tensor_bundle_pb2.BundleEntryProto)
        try:
            record = record_type.FromString(value)
        except (message.DecodeError, ValueError, RuntimeError):
            problems.append(f"the record of {name!r} is not a valid {record_type.__name__}"
                            if key != _HEADER_KEY else "the header record is not valid")
            continue
        if key == _HEADER_KEY:
            continue
        problem = _entry_problem(name, record)
        if problem:
            problems.append(problem)
            continue
        entries[name] = record
    return IndexSummary(extents=extents_of(entries), problems=problems, entries=entries)
