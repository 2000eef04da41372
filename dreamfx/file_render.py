"""Rendering a file through a chain in blocks, so memory does not grow with the file's length.

    input file --blocks--> stage 1 --drop its first L1 samples--> stage 2 --> ... --> output file
    after the input: L1 samples of silence flush stage 1 (through the stages after it), then L2 stage 2, ...

Each dream stage runs streaming (``reset=False``), and the samples it delays (its
latency L) are dropped at its output before the next stage, just as the in-memory
render (``chain(audio, sr)``) compensates each stage; so the stages after it see the
same signal from the same first sample, and the output equals the in-memory render,
lined up with the input.  The output is written under a temporary name and renamed
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
    dreamed in the same batches).  A dream stage's output is advanced by its latency.
    """

    def __init__(self, chain, sample_rate: int, buffer_size: int):
        chain.reset()
        self.chain, self.sample_rate, self.buffer_size = chain, sample_rate, buffer_size
        dreams = [isinstance(p, DreamEffect) for p in chain]
        self.latencies = [p.latency_samples(sample_rate) if dream else 0 for p, dream in zip(chain, dreams)]
        self.pieces = [p.render_block(sample_rate, buffer_size) if dream else buffer_size
                       for p, dream in zip(chain, dreams)]
        self.to_drop = list(self.latencies)
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
        """Yield the rest of the output once the input has ended: each stage in turn, from the first, gives what
        it holds (a dream stage: its latency's worth, by a flush of silence) to the stages after it."""
        for i, latency in enumerate(self.latencies):
            for start in range(0, latency, block_size):
                yield self.process(np.zeros((channels, min(block_size, latency - start)), np.float32), first=i)
            yield self.process(np.zeros((channels, 0), np.float32), first=i, last=True)  # stage i gives what it holds
