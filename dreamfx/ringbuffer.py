"""A preallocated multichannel FIFO of float32 samples (no allocation after construction)."""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """FIFO of ``capacity`` frames of ``channels`` float32 samples."""

    def __init__(self, channels: int, capacity: int):
        self.data = np.zeros((channels, capacity), dtype=np.float32)
        self.capacity = capacity
        self.start = 0
        self.size = 0

    def clear(self) -> None:
        self.start = self.size = 0

    def write(self, block: np.ndarray) -> None:
        """Append block (channels, n); raises OverflowError when it does not fit."""
        n = block.shape[1]
        if n > self.capacity - self.size:
            raise OverflowError(f"ring buffer full: {self.size} + {n} > {self.capacity}")
        end = (self.start + self.size) % self.capacity
        first = min(n, self.capacity - end)
        self.data[:, end:end + first] = block[:, :first]
        self.data[:, :n - first] = block[:, first:]
        self.size += n

    def read_into(self, out: np.ndarray) -> None:
        """Pop out.shape[1] frames into ``out`` (channels, n)."""
        n = out.shape[1]
        if n > self.size:
            raise ValueError(f"ring buffer holds {self.size} frames, {n} requested")
        first = min(n, self.capacity - self.start)
        out[:, :first] = self.data[:, self.start:self.start + first]
        out[:, first:] = self.data[:, :n - first]
        self.start = (self.start + n) % self.capacity
        self.size -= n
