"""An on-disk FIFO of point batches for when the store is down.

Append-only segment files ``<seq>.spool`` in one directory, each a run of records, one
record per batch: ``<point count>\\t<JSON list of [measurement, tags, fields, time_ns]>\\n``.
Every append is fsync'd before it returns. Records come back oldest first (``peek`` /
``pop``); a small ``cursor`` file remembers how far the oldest segment was replayed, so a
new process resumes there (a record replayed just before a crash may be replayed again,
which InfluxDB absorbs: same series and time overwrite).

The total size on disk is bounded by *max_bytes*: past it, whole oldest segments are
deleted and their unreplayed points counted (``dropped_points``). Not thread-safe by itself;
the writer serialises access. One process per directory (an flock guards it).

An append that the disk refuses (full, read-only, I/O error) raises OSError and leaves the
segment as it was (a partly written record is cut off), so the caller can count the batch as
dropped and the spool stays readable. Every file is created 0600 and the directory 0700: they
hold the site's telemetry.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from dcim.metrics import Point

log = logging.getLogger(__name__)

_SUFFIX = ".spool"


class SpoolLocked(RuntimeError):
    """Another process (or writer) holds the spool directory."""


@dataclass
class _Segment:
    seq: int
    path: Path
    size_bytes: int = 0
    records: list[tuple[int, int, int]] = field(default_factory=list)  # (offset, length, points)


def encode_batch(points: Sequence[Point]) -> bytes:
    body = json.dumps([[p.measurement, p.tags, p.fields, p.time_ns] for p in points],
                      ensure_ascii=False, separators=(",", ":"))
    return f"{len(points)}\t{body}\n".encode()


def decode_batch(record: bytes) -> list[Point]:
    _, body = record.split(b"\t", 1)
    return [Point(m, tags, fields, t) for m, tags, fields, t in json.loads(body)]


class Spool:
    """FIFO of batches in *directory*, at most *max_bytes* on disk (see module docstring)."""

    def __init__(self, directory: str | Path, max_bytes: int, segment_bytes: int | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        # Several segments fit under the bound, so dropping the oldest frees a fraction of it.
        self.segment_bytes = segment_bytes or max(4096, min(16 << 20, max_bytes // 8))
        lock_file = os.fdopen(os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+")
        self._lock_file: TextIO | None = lock_file  # None once closed
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise SpoolLocked(f"spool {self.directory} is in use by another writer") from None
        self._segments: list[_Segment] = []
        self._head_done = 0  # records of the oldest segment already replayed
        self._tail_fd: int | None = None
        self.dropped_points = 0
        self._load()

    # --- state ----------------------------------------------------------------------------

    @property
    def pending_points(self) -> int:
        """Points spooled and not yet replayed."""
        segments, done = list(self._segments), self._head_done  # stats() reads from other threads
        total = sum(r[2] for s in segments for r in s.records)
        if segments:
            total -= sum(r[2] for r in segments[0].records[:done])
        return total

    @property
    def size_bytes(self) -> int:
        return sum(s.size_bytes for s in list(self._segments))

    def __bool__(self) -> bool:
        return self.peek_count() > 0

    def head_points(self) -> int:
        """Points in the oldest batch not yet replayed (0 if none)."""
        if not self._segments or self._head_done >= len(self._segments[0].records):
            return 0
        return self._segments[0].records[self._head_done][2]

    def peek_count(self) -> int:
        """Records waiting (not points)."""
        n = sum(len(s.records) for s in self._segments)
        return n - self._head_done if self._segments else 0

    # --- appending ------------------------------------------------------------------------

    def append(self, points: Sequence[Point]) -> int:
        """Spool one batch durably; then enforce the bound. Returns the points dropped."""
        if not points:
            return 0
        record = encode_batch(points)
        tail = self._segments[-1] if self._segments else None
        fd = self._tail_fd
        if tail is None or fd is None or (tail.size_bytes and tail.size_bytes + len(record) > self.segment_bytes):
            tail, fd = self._new_segment()
        offset = tail.size_bytes
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            self._cut_tail(tail, fd)
            raise
        tail.size_bytes += len(record)
        tail.records.append((offset, len(record), len(points)))
        return self._enforce_bound()

    def _cut_tail(self, tail: _Segment, fd: int) -> None:
        """After a failed append: cut what reached the file back to the last whole record (so
        the next append's offset is right), and start a fresh segment next time."""
        try:
            os.ftruncate(fd, tail.size_bytes)  # frees space: works on a full disk
        except OSError as exc:
            log.error("spool %s: cannot cut a partly written record from %s: %s", self.directory, tail.path.name, exc)
        self._close_tail()

    def _new_segment(self) -> tuple[_Segment, int]:
        """A new tail segment and the descriptor it is appended through (also ``_tail_fd``)."""
        self._close_tail()
        seq = self._segments[-1].seq + 1 if self._segments else 1
        seg = _Segment(seq, self.directory / f"{seq:012d}{_SUFFIX}")
        fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self._fsync_dir()  # the new name itself must survive a crash
        except OSError:
            os.close(fd)
            seg.path.unlink(missing_ok=True)
            raise
        self._tail_fd = fd
        self._segments.append(seg)
        return seg, fd

    def _enforce_bound(self) -> int:
        dropped = 0
        while self._segments and self.size_bytes > self.max_bytes:
            seg = self._segments[0]
            lost = sum(r[2] for r in seg.records[self._head_done:])
            dropped += lost
            log.warning("spool %s over its bound of %d bytes: dropped segment %s with %d unreplayed point(s)",
                        self.directory, self.max_bytes, seg.path.name, lost)
            self._remove_head()
        self.dropped_points += dropped
        return dropped

    # --- replaying ------------------------------------------------------------------------

    def peek(self) -> list[Point] | None:
        """The oldest batch not yet replayed, or None."""
        while self._segments and self._head_done >= len(self._segments[0].records):
            if len(self._segments) == 1 and self._tail_fd is not None:
                return None
            self._remove_head()
        if not self._segments:
            return None
        seg = self._segments[0]
        offset, length, _ = seg.records[self._head_done]
        with open(seg.path, "rb") as f:
            f.seek(offset)
            return decode_batch(f.read(length))

    def pop(self) -> None:
        """Mark the batch peek() returned as replayed."""
        seg = self._segments[0]
        self._head_done += 1
        if self._head_done >= len(seg.records):
            if len(self._segments) == 1:
                self._close_tail()  # next append starts a fresh segment
            self._remove_head()
        else:
            self._write_cursor(seg)

    def _remove_head(self) -> None:
        seg = self._segments.pop(0)
        if not self._segments:
            self._close_tail()
        self._head_done = 0
        try:
            seg.path.unlink()
        except FileNotFoundError:
            pass
        if self._segments:
            self._write_cursor(self._segments[0])
        else:
            (self.directory / "cursor").unlink(missing_ok=True)

    def _write_cursor(self, seg: _Segment) -> None:
        """Remember the replay position for a restart. A failure (full disk) is logged, not
        raised: the position in memory is right, and a restart would only replay a few
        records again (idempotent writes)."""
        tmp = self.directory / "cursor.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{seg.seq} {self._head_done}\n")
            os.replace(tmp, self.directory / "cursor")
        except OSError as exc:
            log.warning("spool %s: cannot save the replay position (%s); a restart may replay "
                        "some batches again", self.directory, exc)

    # --- opening --------------------------------------------------------------------------

    def _load(self) -> None:
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            try:
                seq = int(path.stem)
            except ValueError:
                continue
            data = path.read_bytes()
            seg = _Segment(seq, path)
            offset = 0
            while offset < len(data):
                end = data.find(b"\n", offset)
                if end < 0:
                    break
                head, _, _ = data[offset:end].partition(b"\t")
                if not head.isdigit():
                    break
                seg.records.append((offset, end + 1 - offset, int(head)))
                offset = end + 1
            if offset < len(data):
                # A record torn by a crash mid-append: it was never acknowledged as spooled.
                log.warning("spool %s: cutting a torn record (%d bytes) at the end", path.name, len(data) - offset)
                with open(path, "r+b") as f:
                    f.truncate(offset)
            seg.size_bytes = offset
            if seg.records:
                self._segments.append(seg)
            else:
                path.unlink()
        cursor = self.directory / "cursor"
        if self._segments and cursor.exists():
            try:
                seq, done = (int(x) for x in cursor.read_text().split())
            except ValueError:
                seq, done = -1, 0
            if seq == self._segments[0].seq:
                self._head_done = min(done, len(self._segments[0].records))
        if self._segments:
            log.info("spool %s: %d point(s) waiting from an earlier run", self.directory, self.pending_points)

    # --- closing --------------------------------------------------------------------------

    def _close_tail(self) -> None:
        if self._tail_fd is not None:
            os.close(self._tail_fd)
            self._tail_fd = None

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._close_tail()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
