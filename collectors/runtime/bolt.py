"""A read-only reader of bbolt files (containerd's metadata store), a few pages at a time.

The layout is bbolt's (etcd-io/bbolt internal/common: page.go, meta.go, bucket.go):
pages of `page_size` bytes, each with a 16-byte header (id u64, flags u16, count u16,
overflow u32); two meta pages (0 and 1) of which the valid one with the higher txid is
current; a bucket is a B+tree whose root page, or inline page when its root is 0, is in
its parent's leaf value after a 16-byte header (root u64, sequence u64). Branch elements
are (pos u32, ksize u32, pgid u64), leaf elements (flags u32, pos u32, ksize u32,
vsize u32), positions counted from the element itself. All integers little-endian.

The file is another process's, written while it is read: every offset is checked,
and anything that does not fit is "not found", never an exception of Python's.
"""

from __future__ import annotations

import os
import struct

_MAGIC = 0xED0CDAED
_VERSION = 2
_BRANCH, _LEAF, _META = 0x01, 0x02, 0x04
_BUCKET_LEAF = 0x01
_HEADER = struct.Struct("<QHHI")
_META_BODY = struct.Struct("<IIIIQQQQQQ")  # magic..txid, then checksum
_BRANCH_ELEM = struct.Struct("<IIQ")
_LEAF_ELEM = struct.Struct("<IIII")
_MAX_PAGE = 64 * 1024
_MAX_DEPTH = 32  # a B+tree this deep is damage, not data
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


class BoltError(Exception):
    """The file is not a bbolt database this reader understands."""


def _fnv1a64(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


class BoltReader:
    """Lookups in a bbolt file open at `fd` (the caller keeps and closes it)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._size = os.fstat(fd).st_size
        first = self._meta_at(0)
        if first is not None:
            page_size = first[0]
        else:  # meta 0 torn by a write: its page size field still says where meta 1 is
            raw = os.pread(fd, 28, 0)
            page_size = struct.unpack_from("<I", raw, 24)[0] if len(raw) == 28 else 4096
        second = self._meta_at(page_size) if 512 <= page_size <= _MAX_PAGE else None
        metas = [m for m in (first, second) if m is not None and m[0] == page_size]
        if not metas:
            raise BoltError("no valid meta page")
        self.page_size, self.txid, self._root = max(metas, key=lambda m: m[1])

    def _meta_at(self, offset: int) -> tuple[int, int, int] | None:
        """(page size, txid, root bucket page) of the meta page at `offset`, if valid."""
        raw = os.pread(self._fd, _HEADER.size + _META_BODY.size, offset)
        if len(raw) < _HEADER.size + _META_BODY.size:
            return None
        _, flags, _, _ = _HEADER.unpack_from(raw)
        magic, version, psize, _, root, _, _, _, txid, checksum = _META_BODY.unpack_from(
            raw, _HEADER.size
        )
        if flags != _META or magic != _MAGIC or version != _VERSION:
            return None
        # meta.sum64: FNV-1a over the meta up to its checksum field.
        if checksum != _fnv1a64(raw[_HEADER.size : _HEADER.size + _META_BODY.size - 8]):
            return None
        return (psize, txid, root) if 512 <= psize <= _MAX_PAGE else None

    def _page(self, pgid: int) -> bytes | None:
        """A page and its overflow pages, or None when it does not fit the file."""
        offset = pgid * self.page_size
        if pgid < 2 or offset + _HEADER.size > self._size:
            return None
        head = os.pread(self._fd, _HEADER.size, offset)
        if len(head) < _HEADER.size:
            return None
        _, _, _, overflow = _HEADER.unpack(head)
        length = (overflow + 1) * self.page_size
        if offset + length > self._size or length > 1024 * self.page_size:
            return None
        data = os.pread(self._fd, length, offset)
        return data if len(data) == length else None

    def get(self, *path: bytes) -> bytes | None:
        """The value at `path` (buckets, then a key); None when any part is missing."""
        page: bytes | None = self._page(self._root)
        for i, key in enumerate(path):
            found = self._find(page, key, 0) if page is not None else None
            if found is None:
                return None
            flags, value = found
            if i == len(path) - 1:
                return None if flags & _BUCKET_LEAF else value
            if not flags & _BUCKET_LEAF or len(value) < 16:
                return None
            (root,) = struct.unpack_from("<Q", value)
            page = value[16:] if root == 0 else self._page(root)
        return None

    def _find(self, page: bytes, key: bytes, depth: int) -> tuple[int, bytes] | None:
        """(leaf flags, value) of `key` in the tree whose root is `page`."""
        if depth > _MAX_DEPTH or len(page) < _HEADER.size:
            return None
        _, flags, count, _ = _HEADER.unpack_from(page)
        if flags == _BRANCH:
            child = None
            for i in range(count):
                at = _HEADER.size + i * _BRANCH_ELEM.size
                if at + _BRANCH_ELEM.size > len(page):
                    return None
                pos, ksize, pgid = _BRANCH_ELEM.unpack_from(page, at)
                k = page[at + pos : at + pos + ksize]
                if k > key:
                    break  # each element's key is the lowest of its child
                child = pgid
            sub = self._page(child) if child is not None else None
            return self._find(sub, key, depth + 1) if sub is not None else None
        if flags != _LEAF:
            return None
        for i in range(count):
            at = _HEADER.size + i * _LEAF_ELEM.size
            if at + _LEAF_ELEM.size > len(page):
                return None
            eflags, pos, ksize, vsize = _LEAF_ELEM.unpack_from(page, at)
            start = at + pos
            if page[start : start + ksize] == key:
                value = page[start + ksize : start + ksize + vsize]
                return (eflags, value) if len(value) == vsize else None
        return None
