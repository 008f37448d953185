"""Writes a TensorFlow tensor bundle (a checkpoint's `.index` and data file), hashing as it writes.

A bundle is what `tf.train.Checkpoint.write` and `RestoreV2` use: a data file
holding every tensor's bytes back to back, and an `.index` table (the
LevelDB-style table `migrate.source.bundle_index` reads) whose empty key holds
a `BundleHeaderProto` and every other key a `BundleEntryProto` with the
tensor's dtype, shape, offset, size and masked CRC32C.

Writing it here rather than through TensorFlow's `SaveV2` lets a conversion
write each tensor as soon as it is assigned, while the next one is read, and
compute the output's digest (BLAKE3, `files.OUTPUT_DIGEST`) and CRC32C from
the bytes on their way to the file: the manifest then needs no second pass
over the output. The writes and the hashing run on two threads of their own
(file writes, BLAKE3 and CRC32C release the GIL), so on two cores reading,
writing and hashing overlap, and BLAKE3 spreads a large tensor over every core.
Nothing is copied: each tensor is written from the buffer that holds it. A
tensor whose bytes need no change (`add_stored`) goes from the legacy
checkpoint's data file to the output in chunks, checked against the CRC32C
its `.index` holds, without passing through the model.

Example:

    with BundleWriter("out/ckpt") as writer:
        writer.add("model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE", kernel)
        writer.add_string("_CHECKPOINTABLE_OBJECT_GRAPH", graph_bytes)
    digests = writer.digests  # {"ckpt.index": FileDigest(...), "ckpt.data-...": ...}
"""

import collections
import concurrent.futures
import dataclasses
import os
import struct

import google_crc32c
import numpy as np

from migrate import files
from migrate.errors import CheckpointError

DATA_SUFFIX = ".data-00000-of-00001"
INDEX_SUFFIX = ".index"
# Table layout as TensorFlow's own table builder writes it (lib/io/table_options.h).
_BLOCK_BYTES = 256 << 10
_RESTART_INTERVAL = 16
_FOOTER_HANDLE_BYTES = 40  # Two block handles, padded to their largest encoding.
_MAGIC = 0xdb4775248b80fb57
_UNCOMPRESSED = b"\x00"
_CRC_MASK_DELTA = 0xa282ead8
# The tensor bundle version TensorFlow writes (kTensorBundleVersion).
_BUNDLE_VERSION = 1
# TensorFlow's `DataType` numbers (types.proto) of the dtypes a bundle holds as plain numbers.
_DATA_TYPES = {"float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6,
               "complex64": 8, "int64": 9, "bool": 10, "bfloat16": 14, "uint16": 17,
               "complex128": 18, "float16": 19, "uint32": 22, "uint64": 23}
_DT_STRING = 7
# The NumPy dtype name of each of those `DataType` numbers.
DATA_TYPE_NAMES = {number: name for name, number in _DATA_TYPES.items()}
# Protobuf wire types.
_VARINT, _FIXED32, _LENGTH_DELIMITED = 0, 5, 2
# The header TensorFlow writes: one shard, little-endian (0, left out), VersionDef(producer=1).
_HEADER_RECORD = b"\x08\x01\x1a\x02\x08" + bytes([_BUNDLE_VERSION])
# A stored tensor is copied through this many buffers of this size: one is
# read while the others are written and hashed.
_COPY_BUFFERS = 4
_COPY_CHUNK_BYTES = 8 << 20


@dataclasses.dataclass(frozen=True)
class FileDigest:
    """A written file's digest (hex, by `algorithm`, one of `files.DIGEST_ALGORITHMS`) and size."""

    algorithm: str
    hexdigest: str
    size: int


def _crc32c(data):
    return google_crc32c.value(data)


def _mask(crc):
    """Masks a CRC32C as TensorFlow does before storing it (crc32c::Mask).

    Masking keeps a checksum of bytes that themselves hold checksums meaningful.

    >>> hex(_mask(_crc32c(b"123456789")))
    '0xc78ab0e5'
    """
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


class BundleWriter:
    """Writes tensors into a new bundle at `prefix`, one `add` at a time.

    Tensors may be added in any order; the index lists them sorted by key.
    Use it as a context manager: leaving the block normally finishes the
    bundle (waits for the writes, writes the index); leaving it with an
    exception stops the threads and leaves the partial files to the caller's
    temporary directory.

    Attributes:
        digests: after the block, `{file name: FileDigest}` of the data file
            and the index, from the bytes as they were written.
    """

    def __init__(self, prefix):
        self._prefix = str(prefix)
        self._data_name = files.basename(self._prefix) + DATA_SUFFIX
        self._entries = {}
        self._offset = 0
        self._data_digest = files.new_digest(files.OUTPUT_DIGEST)
        self._file = None
        self._writes = self._hashes = None
        self._pending_writes = []
        self._submitted = []
        self._sources = {}
        self._copy_buffers = collections.deque()
        self.digests = None

    def __enter__(self):
        self._file = files.open_binary(self._prefix + DATA_SUFFIX, "wb")
        # One thread each, so writes and hash updates keep the order of `add`.
        self._writes = _executor("tf1-migrate-write")
        self._hashes = _executor("tf1-migrate-hash")
        return self

    def __exit__(self, kind, error, trace):
        try:
            if kind is not None:
                for future in self._submitted:
                    future.cancel()
            concurrent.futures.wait(self._submitted)
        finally:
            self._close_files()
        if kind is None:
            self._finish()
        return False

    def _close_files(self):
        if self._file is not None:
            self._file.close()
            self._file = None
        for source in self._sources.values():
            source.close()
        self._sources.clear()

    def pause(self):
        """Waits for every queued write and hash, then lets go of the files and copy buffers.

        A bundle written ahead of its keys (a batch copies a checkpoint's
        tensors while its plan is still being made) waits this way holding no
        open file and no buffer; the next `add` reopens the data file at its end.
        Errors of the writes and checksums so far are raised when the bundle finishes.
        """
        concurrent.futures.wait(self._submitted)
        self._copy_buffers.clear()
        self._close_files()

    def rekey(self, keys):
        """Gives the tensors written so far their final keys, dtypes and shapes.

        Args:
            keys: `{key written under: (key, dtype, shape)}` for every tensor
                written so far; a dtype must be the one written (a reshape changes
                no bytes, a dtype would).

        Raises:
            ValueError: `keys` does not name every written tensor once, or
                changes a dtype.
        """
        if set(keys) != set(self._entries):
            raise ValueError(f"Expected new keys for exactly the tensors written. Received: "
                             f"keys={sorted(keys)}, written={sorted(self._entries)}")
        entries = {}
        for old, (key, dtype, shape) in keys.items():
            written_dtype, _, offset, size, checksum = self._entries[old]
            if _dtype_enum(np.dtype(dtype)) != written_dtype or key in entries:
                raise ValueError(f"Expected each tensor once, under its written dtype. "
                                 f"Received: key={key!r}, dtype={dtype!r} for {old!r}")
            entries[key] = (written_dtype, _shape_proto(shape), offset, size, checksum)
        self._entries = entries

    def _reopen(self):
        if self._file is None:
            self._file = files.open_binary(self._prefix + DATA_SUFFIX, "ab")

    def add(self, key, array):
        """Queues `array`'s bytes for writing under `key`; returns at once.

        Args:
            key: the checkpoint key.
            array: a C-contiguous NumPy array (or a read-only view of a
                tensor's buffer); it must not change until the bundle is finished.
        """
        array = np.asarray(array)
        if not array.flags.c_contiguous:
            raise ValueError(f"Expected a C-contiguous array for {key!r}. "
                             f"Received: strides={array.strides}")
        payload = array.reshape(-1).view(np.uint8)
        # google_crc32c takes read-only buffers only; a view is made read-only
        # without touching the array it shows.
        payload.flags.writeable = False
        self._queue(key, _dtype_enum(array.dtype), _shape_proto(array.shape), [payload])

    def add_stored(self, key, dtype, shape, stored, *, inspect=None):
        """Copies a tensor's bytes from a legacy checkpoint's data file under `key`.

        The bytes are read a chunk at a time into a few reused buffers and
        written as they are (a reshape changes no bytes), while the next chunk
        is read. Their CRC32C, computed on the way, must be the one the
        source's `.index` holds, which is then the output's too: damaged
        source bytes fail the bundle when it finishes, as TensorFlow's reader
        would fail on them, and nothing is renamed into place.

        Args:
            key: the checkpoint key.
            dtype: the NumPy dtype of the elements.
            shape: the shape to record (the model weight's).
            stored: a `migrate.source.bundle_index.StoredTensor`.
            inspect: called on this thread with each chunk as a read-only
                NumPy array of `dtype` (a NaN/Inf count), before it is queued.

        Raises:
            CheckpointError: the data file ends before the tensor does.
        """
        dtype = np.dtype(dtype)
        if key in self._entries:
            raise ValueError(f"Expected each key once in a checkpoint. Received: key={key!r}")
        self._reopen()
        source = self._source(stored.path)
        running = _RunningCrc()
        done = 0
        while done < stored.size:
            length = min(_COPY_CHUNK_BYTES, stored.size - done)
            buffer = self._free_copy_buffer(length)
            view = memoryview(buffer)[:length]
            _read_into(source, view, stored, done)
            chunk = np.frombuffer(view, np.uint8)
            # google_crc32c takes read-only buffers only.
            chunk.flags.writeable = False
            if inspect is not None:
                inspect(chunk.view(dtype))
            write = self._submit(self._writes, self._file.write, chunk)
            self._copy_buffers.append(
                (buffer, write, self._submit(self._hashes, self._hash_stored_chunk, chunk,
                                             running)))
            self._pending_writes.append(write)
            done += length
        checksum = self._submit(self._hashes, _check_stored_crc, running, stored)
        self._entries[key] = (_dtype_enum(dtype), _shape_proto(shape), self._offset, stored.size,
                              checksum)
        self._offset += stored.size

    def _submit(self, executor, function, *arguments):
        future = executor.submit(function, *arguments)
        self._submitted.append(future)
        return future

    def _source(self, path):
        source = self._sources.get(path)
        if source is None:
            source = self._sources[path] = open(path, "rb", buffering=0)
        return source

    def _free_copy_buffer(self, length):
        """Returns a copy buffer of at least `length` bytes that no write or hash still uses: a
        new one, or the oldest used (replaced when too small).

        A buffer is only as large as the chunk it first holds: a checkpoint of
        small tensors then never fills four 8 MB buffers with zeros (measured:
        most of a small_convnet checkpoint's copy).
        """
        if len(self._copy_buffers) < _COPY_BUFFERS:
            return bytearray(length)
        buffer, write, hashed = self._copy_buffers.popleft()
        write.result()  # A failed write (a full disk) raises here, at once.
        hashed.result()
        return buffer if len(buffer) >= length else bytearray(length)

    def _hash_stored_chunk(self, chunk, running):
        self._data_digest.update(chunk)
        running.value = google_crc32c.extend(running.value, chunk)

    def add_string(self, key, value):
        """Queues a scalar string tensor (the object graph), encoded as TensorFlow encodes it.

        A string tensor's bytes are the element lengths as varints, a masked
        CRC32C of those lengths (each as a little-endian uint32), then the
        elements; its checksum covers the lengths, that CRC and the elements.
        """
        value = bytes(value)
        lengths_crc = _crc32c(struct.pack("<I", len(value)))
        lengths_checksum = struct.pack("<I", _mask(lengths_crc))
        payload = [_varint(len(value)), lengths_checksum, value]
        crc = google_crc32c.extend(google_crc32c.extend(lengths_crc, lengths_checksum), value)
        self._queue(key, _DT_STRING, _shape_proto(()), payload, crc=_mask(crc))

    def _queue(self, key, dtype, shape, chunks, *, crc=None):
        if key in self._entries:
            raise ValueError(f"Expected each key once in a checkpoint. Received: key={key!r}")
        self._reopen()
        size = sum(len(chunk) for chunk in chunks)
        self._pending_writes.extend(self._submit(self._writes, self._file.write, chunk)
                                    for chunk in chunks)
        checksum = self._submit(self._hashes, self._hash, chunks, crc)
        self._entries[key] = (dtype, shape, self._offset, size, checksum)
        self._offset += size

    def _hash(self, chunks, crc):
        """Adds the chunks to the data file's digest; returns `crc`, or their masked CRC32C."""
        value = 0
        for chunk in chunks:
            self._data_digest.update(chunk)
            value = google_crc32c.extend(value, chunk)
        return _mask(value) if crc is None else crc

    def _finish(self):
        """Writes the index, once every write and hash is done; sets `digests`."""
        # A failed write (a full disk) or hash raises here, before the index exists.
        for write in self._pending_writes:
            write.result()
        records = [(b"", _HEADER_RECORD)]
        for key in sorted(self._entries, key=lambda name: name.encode("utf-8")):
            dtype, shape, offset, size, checksum = self._entries[key]
            records.append((key.encode("utf-8"), _entry_proto(dtype, shape, offset, size,
                                                              checksum.result())))
        index = _table(records)
        files.write_bytes(self._prefix + INDEX_SUFFIX, index)
        index_digest = files.new_digest(files.OUTPUT_DIGEST)
        index_digest.update(index)
        self.digests = {
            self._data_name: FileDigest(files.OUTPUT_DIGEST, self._data_digest.hexdigest(),
                                        self._offset),
            files.basename(self._prefix) + INDEX_SUFFIX: FileDigest(
                files.OUTPUT_DIGEST, index_digest.hexdigest(), len(index)),
        }


_executors = {}


def _executor(name):
    """Returns this process's one-thread executor `name`, started on first use.

    Shared by the bundles a process writes one after another (a batch worker
    writes hundreds): starting and joining two threads per bundle cost more
    than copying a small checkpoint's bytes.
    """
    executor = _executors.get(name)
    if executor is None:
        executor = _executors[name] = concurrent.futures.ThreadPoolExecutor(1, name)
    return executor


class _RunningCrc:
    """The CRC32C of a stored tensor's chunks so far (updated on the hashing thread only)."""

    value = 0


def read_stored(stored, dtype, shape):
    """Reads a stored tensor (a `bundle_index.StoredTensor`) as a NumPy array, without TensorFlow.

    Its CRC32C must be the one the `.index` holds, as TensorFlow's reader checks.

    Raises:
        CheckpointError: the data file ends inside the tensor, or its bytes fail the checksum.
    """
    data = bytearray(stored.size)
    with open(stored.path, "rb", buffering=0) as source:
        _read_into(source, memoryview(data), stored, 0)
    payload = np.frombuffer(data, np.uint8)
    payload.flags.writeable = False  # google_crc32c takes read-only buffers only.
    running = _RunningCrc()
    running.value = google_crc32c.extend(0, payload)
    _check_stored_crc(running, stored)
    return np.frombuffer(data, np.dtype(dtype)).reshape(shape)


def _read_into(source, view, stored, done):
    """Fills `view` with the stored tensor's bytes from `done` on; raises where the file ends."""
    read = 0
    while read < len(view):
        count = os.preadv(source.fileno(), [view[read:]], stored.offset + done + read)
        if not count:
            raise CheckpointError(
                f"Cannot read {stored.key!r} from checkpoint {stored.checkpoint}: "
                f"{stored.path} ends inside it. Expected {stored.size} bytes at offset "
                f"{stored.offset}. Received: size={files.size(stored.path)}")
        read += count


def _check_stored_crc(running, stored):
    """Returns the stored masked CRC32C once the copied bytes are shown to have it."""
    computed = _mask(running.value)
    if computed != stored.crc32c:
        raise CheckpointError(
            f"Cannot read {stored.key!r} from checkpoint {stored.checkpoint}: Checksum does not "
            f"match: stored {stored.crc32c} vs. calculated on the read bytes {computed} (in "
            f"{stored.path}). Expected intact tensor data. Received: name={stored.key!r}")
    return computed


def _field(number, wire_type):
    return _varint(number << 3 | wire_type)


def _length_delimited(number, payload):
    return _field(number, _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _shape_proto(shape):
    """Serializes a `TensorShapeProto` of `shape` as protobuf does (a zero size is left out).

    >>> _shape_proto((3, 0)).hex()
    '120208031200'
    """
    return b"".join(_length_delimited(2, _field(1, _VARINT) + _varint(int(size)) if size else b"")
                    for size in shape)


def _entry_proto(dtype, shape, offset, size, crc32c):
    """Serializes a `BundleEntryProto` (shard 0) as protobuf does: fields in number order,
    zeros left out, the shape always present (`tf.train.Checkpoint.write` sets it)."""
    record = _field(1, _VARINT) + _varint(dtype) + _length_delimited(2, shape)
    for number, value in ((4, offset), (5, size)):
        if value:
            record += _field(number, _VARINT) + _varint(value)
    if crc32c:
        record += _field(6, _FIXED32) + struct.pack("<I", crc32c)
    return record


def _dtype_enum(dtype):
    """Returns TensorFlow's `DataType` number of a NumPy dtype.

    >>> _dtype_enum(np.float32), _dtype_enum(np.int64)
    (1, 9)
    """
    try:
        return _DATA_TYPES[np.dtype(dtype).name]
    except (KeyError, TypeError):
        raise ValueError(f"Expected a numeric tensor dtype. Received: dtype={dtype}") from None


def _varint(value):
    encoded = bytearray()
    while value >= 0x80:
        encoded.append((value & 0x7F) | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


def _block(records, restart_interval):
    """Encodes sorted `(key, value)` records as one table block with prefix-compressed keys."""
    block = bytearray()
    restarts = []
    previous = b""
    for number, (key, value) in enumerate(records):
        if number % restart_interval == 0:
            restarts.append(len(block))
            shared = 0
        else:
            shared = 0
            limit = min(len(previous), len(key))
            while shared < limit and previous[shared] == key[shared]:
                shared += 1
        block += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        block += key[shared:] + value
        previous = key
    restarts = restarts or [0]
    block += struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))
    return bytes(block)


def _table(records):
    """Returns the bytes of a table holding the sorted `records`: data blocks, index, footer."""
    output = bytearray()

    def append_block(block):
        handle = _varint(len(output)) + _varint(len(block))
        output.extend(block)
        output.extend(_UNCOMPRESSED)
        output.extend(struct.pack("<I", _mask(_crc32c(block + _UNCOMPRESSED))))
        return handle

    index_records = []
    pending, pending_bytes = [], 0
    for key, value in records:
        pending.append((key, value))
        pending_bytes += len(key) + len(value)
        if pending_bytes >= _BLOCK_BYTES:
            index_records.append((key, append_block(_block(pending, _RESTART_INTERVAL))))
            pending, pending_bytes = [], 0
    if pending:
        index_records.append((pending[-1][0], append_block(_block(pending, _RESTART_INTERVAL))))
    metaindex_handle = append_block(_block([], _RESTART_INTERVAL))
    index_handle = append_block(_block(index_records, 1))
    footer = (metaindex_handle + index_handle).ljust(_FOOTER_HANDLE_BYTES, b"\x00")
    output.extend(footer + struct.pack("<Q", _MAGIC))
    return bytes(output)
