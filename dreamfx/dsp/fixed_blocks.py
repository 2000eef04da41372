"""A FIFO that hands a processor whole pieces of one fixed size, whatever blocks a host sends.

    block (channels, n) -> held input -> k whole pieces (channels, k * size) -> process -> ready output
                                                                                  -> (channels, n) out

Some stages give another output when the same audio comes in blocks of other sizes:
pedalboard's plugins re-prepare when a block is larger than the ones before it, and
Reverb and Limiter smooth per block (a chain streamed in blocks of 1..512 samples was
up to 0.36 from its one-call render, measured on the example clip), and a dream's
offline batches hold the chunks a call completes.  Behind this FIFO such a stage sees
the same pieces from the stream's first sample on, so the output no longer depends on
how the host sliced the audio.  The price is a fixed delay of ``size - 1`` samples,
reported and compensated like any other latency: with it, every block of n samples
gets n samples back at once.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


class FixedBlocks:
    """Feeds ``process`` multiples of ``size`` samples from the stream's start; output delayed by ``size - 1``.

    ``process`` takes and returns float32 (channels, k * size) arrays; each call of this object takes a block
    (channels, n) and returns (channels, n).
    """

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"a fixed block holds at least one sample, got {size}")
        self.size = size
        self.held: np.ndarray | None = None   # (channels, < size) input short of a whole piece
        self.ready: np.ndarray | None = None  # (channels, m) output not yet returned
        self.whole_pieces = False             # the caller sends whole pieces only: no delay

    @property
    def latency(self) -> int:
        """Samples the output is delayed by: a piece less one, the least that lets any block come back at once
        (none for a caller that sends whole pieces only, see :meth:`take_whole_pieces`)."""
        return 0 if self.whole_pieces else self.size - 1

    def reset(self) -> None:
        """Forget the stream: the next block starts a new one (held input dropped, delay line silent)."""
        self.held = self.ready = None
        self.whole_pieces = False

    def resize(self, size: int) -> None:
        """Pieces of ``size`` samples from now on; a new size starts a new stream."""
        if size != self.size:
            self.size = size
            self.reset()

    def take_whole_pieces(self) -> None:
        """Until the next reset, accept only blocks of whole pieces and pass them on at once (no delay): for a
        caller that already waits for whole pieces (the live worker)."""
        self.reset()
        self.whole_pieces = True

    def __call__(self, block: np.ndarray, process: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        channels, n = block.shape
        if self.whole_pieces:
            if n % self.size:
                raise ValueError(f"this FIFO takes whole pieces of {self.size} samples, got {n}")
            return process(block) if n else block
        if self.held is None or self.held.shape[0] != channels:  # a new stream (or a new channel layout)
            self.held = np.zeros((channels, 0), np.float32)
            self.ready = np.zeros((channels, self.latency), np.float32)
        data = np.concatenate([self.held, block], axis=1) if self.held.shape[1] else block
        whole = data.shape[1] // self.size * self.size
        self.held = data[:, whole:].copy()
        if whole:
            self.ready = np.concatenate([self.ready, process(np.ascontiguousarray(data[:, :whole]))], axis=1)
        out, self.ready = self.ready[:, :n], self.ready[:, n:]
        return out
