"""A preallocated multichannel FIFO of float32 samples: no allocation after construction.

Safe for one producer and one consumer without locks: the producer only
advances ``written`` and the consumer only advances ``consumed``, and data is
copied before the counter that publishes it moves.  Both counters live in one
int64 array (:attr:`RingBuffer.counters`) and the samples in one float32 array,
so compiled code that runs without the interpreter (the live audio callback,
:mod:`dreamfx.live.native_audio`) can be one of the two sides.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """FIFO of ``capacity`` frames of ``channels`` float32 samples."""

    def __init__(self, channels: int, capacity: int):
        self.data = np.zeros((channels, capacity), dtype=np.float32)
        self.capacity = capacity
        self.counters = np.zeros(2, dtype=np.int64)  # frames ever written (producer's), ever read (consumer's)

    @property
    def written(self) -> int:
        return int(self.counters[0])

    @property
    def consumed(self) -> int:
        return int(self.counters[1])

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
        self.counters[:] = 0

    def write(self, block: np.ndarray) -> None:
        """Append block (channels, n); raises OverflowError when it does not fit."""
        n = block.shape[1]
        if n > self.free:
            raise OverflowError(f"ring buffer full: {self.size} + {n} > {self.capacity}")
        end = self.written % self.capacity
        first = min(n, self.capacity - end)
        self.data[:, end:end + first] = block[:, :first]
        self.data[:, :n - first] = block[:, first:]
        self.counters[0] += n

    def read_into(self, out: np.ndarray) -> None:
        """Pop out.shape[1] frames into ``out`` (channels, n)."""
        n = out.shape[1]
        if n > self.size:
            raise ValueError(f"ring buffer holds {self.size} frames, {n} requested")
        start = self.consumed % self.capacity
        first = min(n, self.capacity - start)
        out[:, :first] = self.data[:, start:start + first]
        out[:, first:] = self.data[:, :n - first]
        self.counters[1] += n

    def skip(self, n: int) -> None:
        """Drop the next ``n`` frames (n <= size)."""
        if n > self.size:
            raise ValueError(f"ring buffer holds {self.size} frames, cannot skip {n}")
        self.counters[1] += n
