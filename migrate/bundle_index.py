"""Reads where a TF checkpoint's `.index` puts each tensor, so truncated data shards are caught.

TensorFlow checks a tensor's bytes only when it reads that tensor, so a data
shard cut short (an interrupted copy) converts without a word as long as the
weights a conversion reads come before the cut. The `.index` records every
tensor's shard, offset and size; comparing those with the shard sizes costs
one small file read.

The `.index` is a LevelDB-style table of `BundleEntryProto` records (format:
tensorflow/core/util/tensor_bundle, tensorflow/core/lib/io/table). Anything
this reader does not understand makes it return None: TensorFlow's own
reader, which runs first, is the judge of a malformed index.

Example:

    extents = shard_extents("train/model.ckpt-3.index")   # {0: 5332}
"""

import struct

_FOOTER_BYTES = 48
_MAGIC = 0xdb4775248b80fb57
_BLOCK_TRAILER_BYTES = 5  # compression type, then a masked CRC32C
_UNCOMPRESSED = 0
_HEADER_KEY = b""
# BundleEntryProto field numbers (tensor_bundle.proto).
_SHARD_ID_FIELD = 3
_OFFSET_FIELD = 4
_SIZE_FIELD = 5


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


def _entry_extent(value):
    """Returns `(shard_id, offset + size)` of a serialized `BundleEntryProto`."""
    fields = {_SHARD_ID_FIELD: 0, _OFFSET_FIELD: 0, _SIZE_FIELD: 0}
    position = 0
    while position < len(value):
        tag, position = _varint(value, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            number_value, position = _varint(value, position)
            if number in fields:
                fields[number] = number_value
        elif wire_type == 2:
            length, position = _varint(value, position)
            position += length
        elif wire_type == 5:
            position += 4
        elif wire_type == 1:
            position += 8
        else:
            raise _Malformed(f"wire type {wire_type}")
        if position > len(value):
            raise _Malformed("field runs past the entry")
    return fields[_SHARD_ID_FIELD], fields[_OFFSET_FIELD] + fields[_SIZE_FIELD]


def shard_extents(index_bytes):
    """Returns `{shard id: bytes the index says that shard holds}`, or None.

    Args:
        index_bytes: the contents of a checkpoint's `.index` file.

    Returns:
        For each data shard the end of its last tensor, i.e. the smallest
        size the shard file can have; None when the bytes are not a table
        this reader understands (TensorFlow's reader decides then).

    Example:

        extents = shard_extents(open("model.ckpt-3.index", "rb").read())
        assert os.path.getsize("model.ckpt-3.data-00000-of-00001") >= extents[0]
    """
    data = bytes(index_bytes)
    try:
        if len(data) < _FOOTER_BYTES:
            raise _Malformed("shorter than a footer")
        footer = data[-_FOOTER_BYTES:]
        (magic,) = struct.unpack_from("<Q", footer, _FOOTER_BYTES - 8)
        if magic != _MAGIC:
            raise _Malformed("bad magic number")
        _, position = _varint(footer, 0)  # The metaindex handle; a bundle's is empty.
        _, position = _varint(footer, position)
        index_block, _ = _block(data, footer, position)
        extents = {}
        for _, handle in _entries(index_block):
            block, _ = _block(data, handle)
            for key, value in _entries(block):
                if key == _HEADER_KEY:
                    continue
                shard, end = _entry_extent(value)
                extents[shard] = max(extents.get(shard, 0), end)
        return extents
    except (_Malformed, struct.error):
        return None
