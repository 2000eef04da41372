"""A preallocated multichannel FIFO of float32 samples: no allocation after construction.

Safe for one producer thread and one consumer thread without locks: the
producer only advances ``written`` and the consumer only advances ``consumed``
(each a plain int assignment, atomic in CPython), and data is copied before the
counter that publishes it moves.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """FIFO of ``capacity`` frames of ``channels`` float32 samples."""

    def __init__(self, channels: int, capacity: int):
        self.data = np.zeros((channels, capacity), dtype=np.float32)
        self.capacity = capacity
        self.written = 0   # frames ever written (producer's counter)
        self.consumed = 0  # frames ever read (consumer's counter)

    @property
    def size(self) -> int:
        """Frames ready to read."""
        return self.written - self.consumed

    @property
    def free(self) -> int:
        """Frames that can be written."""
        return self.capacity - self.size

    def clear(self) -> None:
        """Drop everything (only while neither side runs)."""
        self.written = self.consumed = 0

    def write(self, block: np.ndarray) -> None:
        """Append block (channels, n); raises OverflowError when it does not fit."""
        n = block.shape[1]
        if n > self.free:
            raise OverflowError(f"ring buffer full: {self.size} + {n} > {self.capacity}")
        end = self.written % self.capacity
        first = min(n, self.capacity - end)
        self.data[:, end:end + first] = block[:, :first]
        self.data[:, :n - first] = block[:, first:]
        self.written += n

    def read_into(self, out: np.ndarray) -> None:
        """Pop out.shape[1] frames into ``out`` (channels, n)."""
        n = out.shape[1]
        if n > self.size:
            raise ValueError(f"ring buffer holds {self.size} frames, {n} requested")
        start = self.consumed % self.capacity
        first = min(n, self.capacity - start)
        out[:, :first] = self.data[:, start:start + first]
        out[:, first:] = self.data[:, :n - first]
        self.consumed += n

    def skip(self, n: int) -> None:
        """Drop the next ``n`` frames (n <= size)."""
        if n > self.size:
            raise ValueError(f"ring buffer holds {self.size} frames, cannot skip {n}")
        self.consumed += n
