"""Rendering a file through a chain in blocks, so memory does not grow with the file's length.

    input file --blocks--> stage 1 --> stage 2 --> ... --> drop the first L samples --> output file
    after the input: L samples of silence flush the chain (L: the chain's latency)

The chain runs streaming (``reset=False``) and its latency is dropped at the end,
just as the in-memory render (``chain(audio, sr)``) does; so the output equals the
in-memory render, lined up with the input.  The output is written under a temporary name and renamed
when complete: an error or Ctrl-C leaves no partial file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from dreamfx.audio_io import checked_sample_rate, open_audio, open_output
from dreamfx.effect import DreamEffect, check_finite
from dreamfx.errors import DreamfxError

BLOCK = 1 << 16  # samples read, rendered and written at a time (1.5 s at 44.1 kHz)


def render_file(chain, source: str | Path, destination: str | Path, *, buffer_size: int = 8192,
                block_size: int = BLOCK, bit_depth: int | None = None,
                before: Callable[[int, int], None] | None = None,
                progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Render ``source`` through ``chain`` (a Chain) into ``destination``, ``block_size`` samples at a time; returns
    (its sample rate, samples rendered).  The output equals ``chain(audio, sample_rate, buffer_size=buffer_size)``.

    before(sample_rate, channels): called once the input is open, before any audio (e.g. to attach automation).
    progress(samples done): called after each block.
    """
    source, destination = Path(source), Path(destination)
    with open_audio(source) as f:
        frames = f.frames
        sample_rate, channels = checked_sample_rate(source, f, frames), f.num_channels
        if before is not None:
            before(sample_rate, channels)
        stages = _CompensatedStages(chain, sample_rate, buffer_size)
        with open_output(destination, sample_rate, channels, bit_depth) as write:
            fed = 0
            while fed < frames:
                block = _read(f, source, min(block_size, frames - fed), fed)
                if block.shape[1] == 0:  # the file held fewer samples than its header said
                    break
                fed += block.shape[1]
                write(stages.process(block))
                if progress is not None:
                    progress(fed)
            for tail in stages.flush(channels, block_size):
                write(tail)
    return sample_rate, fed


def _read(f, source: Path, n: int, position: int) -> np.ndarray:
    """The next block of at most ``n`` samples (from sample ``position``), float32 (channels, n'), finite."""
    try:
        block = f.read(n)
    except Exception as exc:
        raise DreamfxError(f"{source} could not be read as audio ({str(exc).splitlines()[0]})") from None
    check_finite(block, str(source), position)
    return block.astype(np.float32, copy=False)


class _CompensatedStages:
    """``chain``'s stages, streaming (see the module doc).

    Every stage is given its input in the pieces the in-memory render gives it (from
    its first sample on; the rest when the input ends): a pedalboard plugin
    ``buffer_size`` samples (pedalboard's Reverb, Compressor and Limiter give another
    output when the same signal comes in other pieces, measured: up to 0.14 apart), a
    dream stage its :meth:`~dreamfx.effect.DreamEffect.render_block` (its chunks are
    dreamed in the same batches).  The last stage's output is advanced by the chain's
    latency.
    """

    def __init__(self, chain, sample_rate: int, buffer_size: int):
        chain.reset()
        self.chain, self.sample_rate, self.buffer_size = chain, sample_rate, buffer_size
        self.latency = chain.latency_samples(sample_rate)
        self.pieces = [p.render_block(sample_rate, buffer_size) if isinstance(p, DreamEffect) else buffer_size
                       for p in chain]
        self.to_drop = [0] * (len(chain) - 1) + [self.latency]
        self.held = [None] * len(chain)  # per stage: input short of a whole piece, (channels, < piece)

    def process(self, block: np.ndarray, first: int = 0, last: bool = False) -> np.ndarray:
        """block (channels, n) through stages ``first`` and after; returns what is ready (channels, n').
        last: stage ``first`` gets no more input, so it gives what it holds (the stages after it wait for
        their own turn: the stages between may still give them more)."""
        for i in range(first, len(self.chain)):
            plugin, piece = self.chain[i], self.pieces[i]
            if self.held[i] is not None:
                block = np.concatenate([self.held[i], block], axis=1)
            ready = block.shape[1] if last and i == first else block.shape[1] // piece * piece
            self.held[i] = block[:, ready:]
            if ready:
                block = plugin(np.ascontiguousarray(block[:, :ready]), self.sample_rate, buffer_size=self.buffer_size,
                               reset=False)
            else:
                block = block[:, :0]
            drop = min(self.to_drop[i], block.shape[1])
            block, self.to_drop[i] = block[:, drop:], self.to_drop[i] - drop
        return block

    def flush(self, channels: int, block_size: int):
        """Yield the rest of the output once the input has ended: the chain's latency of silence, then each
        stage in turn, from the first, gives what it holds to the stages after it."""
        for start in range(0, self.latency, block_size):
            yield self.process(np.zeros((channels, min(block_size, self.latency - start)), np.float32))
        for i in range(len(self.chain)):
            yield self.process(np.zeros((channels, 0), np.float32), first=i, last=True)  # stage i gives what it holds
