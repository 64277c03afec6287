"""Random access to the records of a `.rec` file through its `.idx`, safe in worker processes.

Payloads are read with plain file I/O (the dmlc RecordIO framing: magic, length word with a
continuation flag, data padded to 4 bytes), so forked workers need no MXNet handles and a
damaged record raises RecordError for that record only. A missing `.idx` is rebuilt by
scanning the `.rec`.
"""
import logging
import os
import struct

from .recordio import RecordError, split_paths

MAGIC = 0xced7230a
_MAGIC_BYTES = struct.pack('<I', MAGIC)
_LENGTH_BITS = 29
# Continuation flag of a whole record and of the last part of a split one (1 and 2 mark the
# first and middle parts).
_WHOLE, _LAST = 0, 3

log = logging.getLogger(__name__)


def _read_record(handle, name):
    """The payload of the record at the handle's position; leaves the handle after it."""
    offset = handle.tell()
    parts = []
    while True:
        head = handle.read(8)
        if len(head) < 8:
            raise RecordError('%s: record at byte %d is truncated' % (name, offset))
        magic, length_word = struct.unpack('<II', head)
        if magic != MAGIC:
            raise RecordError('%s: no record starts at byte %d' % (name, offset))
        flag, length = length_word >> _LENGTH_BITS, length_word & ((1 << _LENGTH_BITS) - 1)
        data = handle.read(length)
        if len(data) < length:
            raise RecordError('%s: record at byte %d is truncated' % (name, offset))
        parts.append(data)
        if flag in (_WHOLE, _LAST):
            handle.seek(-length % 4, os.SEEK_CUR)
            break
        # A record containing the magic word is stored in parts split at it (dmlc
        # RecordIO); parts before the last are 4-byte aligned, so there is no padding here.
    return _MAGIC_BYTES.join(parts)


def scan_offsets(rec_path):
    """Byte offset of every record in a `.rec` file, in file order."""
    offsets = []
    size = os.path.getsize(rec_path)
    with open(rec_path, 'rb') as handle:
        while handle.tell() < size:
            offsets.append(handle.tell())
            try:
                _read_record(handle, rec_path)
            except RecordError as err:
                raise ValueError('%s; cannot rebuild the index past record %d'
                                 % (err, len(offsets) - 1)) from None
    return offsets


def rebuild_index(rec_path, idx_path):
    """Write `idx_path` for `rec_path` (keys 0..n-1 in file order); returns (keys, offsets).

    When the folder is read-only the index is kept in memory only, with a warning."""
    offsets = scan_offsets(rec_path)
    keys = list(range(len(offsets)))
    tmp_path = idx_path + '.tmp'
    try:
        with open(tmp_path, 'w') as handle:
            handle.writelines('%d\t%d\n' % pair for pair in zip(keys, offsets))
        os.replace(tmp_path, idx_path)
        log.warning('%s: index was missing; rebuilt %s (%d records)', rec_path, idx_path,
                    len(keys))
    except OSError as err:
        log.warning('%s: index was missing and cannot be written (%s); using it in memory',
                    rec_path, err)
    return keys, offsets


def read_index(idx_path):
    """Parse an `.idx` file (`key<TAB>offset` lines) -> (keys, offsets) in file order."""
    keys, offsets = [], []
    with open(idx_path) as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                key, offset = (int(field) for field in fields)
            except ValueError:
                raise ValueError('%s: line %d is not "key<TAB>offset"' % (idx_path, number)) \
                    from None
            keys.append(key)
            offsets.append(offset)
    return keys, offsets


class RecordFile:
    """The records of one `.rec` (+ `.idx`) pair: `keys`, `offsets`, and `read(offset)`.
    ValueError naming the file when it holds no records.

    Picklable: each process opens its own file handle on first read.
    """

    def __init__(self, path):
        self.idx_path, self.rec_path = split_paths(path)
        if not os.path.isfile(self.rec_path):
            if os.path.isfile(path):
                raise ValueError('%s: not a .rec file (give a .rec file or its prefix)' % path)
            raise ValueError('%s: no such record file' % self.rec_path)
        if not os.path.getsize(self.rec_path):
            # Said here, once: each record of a stale .idx would fail alone as truncated.
            raise ValueError('%s: empty record file (0 bytes)' % self.rec_path)
        if os.path.isfile(self.idx_path):
            self.keys, self.offsets = read_index(self.idx_path)
            if not self.keys:
                raise ValueError('%s: index lists no records though %s is not empty (delete '
                                 'the .idx to rebuild it)' % (self.idx_path, self.rec_path))
        else:
            self.keys, self.offsets = rebuild_index(self.rec_path, self.idx_path)
        self._handle = None

    def __len__(self):
        return len(self.keys)

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_handle'] = None
        return state

    def _file(self):
        if self._handle is None:
            self._handle = open(self.rec_path, 'rb')
        return self._handle

    def read(self, offset):
        """The payload of the record starting at byte `offset`."""
        handle = self._file()
        handle.seek(offset)
        return _read_record(handle, self.rec_path)

    def close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None
