"""The box layer of the fMP4 reader: sizes checked against the parent and the data, and
a cap on how many boxes one read may visit."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from transcode.errors import EncodeFailed

# Deeper or more boxes than any packager writes: past these the input is not one of ours.
MAX_DEPTH = 10
MAX_BOXES = 200_000
MAX_SAMPLES_PER_RUN = 1_000_000


class MalformedMp4(EncodeFailed):
    """Raised when fMP4 bytes break the box structure (a size past its parent or the data,
    a missing box, too deep or too many boxes) or lack what packaging needs."""


class Buffer(Protocol):
    """What the reader reads: ``bytes``, ``bytearray``, ``memoryview`` or ``mmap``."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: slice, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Box:
    """One box: its type, where it starts, where its payload starts and where it ends."""

    type: bytes
    offset: int
    payload: int
    end: int


def boxes(data: Buffer, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes laid end to end in ``data[start:end]``; each size checked against it."""
    end = len(data) if end is None else end
    offset = start
    while offset < end:
        if end - offset < 8:
            raise MalformedMp4(f"{end - offset} stray bytes at offset {offset}")
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        payload = offset + 8
        if size == 1:
            if end - offset < 16:
                raise MalformedMp4(f"box {name_of(kind)} at {offset}: truncated 64-bit size")
            (size,) = struct.unpack(">Q", data[offset + 8 : offset + 16])
            payload = offset + 16
        elif size == 0:
            size = end - offset  # runs to the end of its parent
        if size < payload - offset or offset + size > end:
            raise MalformedMp4(
                f"box {name_of(kind)} at {offset} claims {size} bytes, {end - offset} remain"
            )
        yield Box(kind, offset, payload, offset + size)
        offset += size


class Counter:
    """Counts boxes visited by one read: a cap on the work a hostile file can cause."""

    def __init__(self) -> None:
        self.seen = 0

    def add(self, count: int = 1) -> None:
        """Count ``count`` more boxes; MalformedMp4 past ``MAX_BOXES``."""
        self.seen += count
        if self.seen > MAX_BOXES:
            raise MalformedMp4(f"more than {MAX_BOXES} boxes")


def name_of(kind: bytes) -> str:
    """A box type for messages (bytes that are not text are escaped)."""
    return kind.decode("latin-1").encode("unicode_escape").decode()
