"""Rendering a file through a chain in blocks, so memory does not grow with the file's length.

    input file --blocks--> stage 1 --> stage 2 --> ... --> drop the first L samples --> output file
    after the input: L samples of silence flush the chain (L: the chain's latency)

The chain runs streaming (``reset=False``) and its first L output samples are dropped,
just as the in-memory render (``chain(audio, sr)``) does; a chain's output does not
depend on the blocks it is given (see :mod:`dreamfx.plugin.chain`), so the output equals the
in-memory render, lined up with the input, bit for bit.  The output is written under a temporary name and renamed
when complete: an error or Ctrl-C leaves no partial file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from dreamfx.audio_io import checked_sample_rate, open_audio, open_output
from dreamfx.audio_io import check_finite
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
        chain.check_rate(sample_rate)
        chain.reset()
        latency = chain.latency_samples(sample_rate)
        to_drop = latency  # the first samples out precede the input: a host's delay compensation drops them

        def render(block: np.ndarray) -> np.ndarray:
            nonlocal to_drop
            out = chain(block, sample_rate, buffer_size=buffer_size, reset=False)
            drop = min(to_drop, out.shape[1])
            to_drop -= drop
            return out[:, drop:]
        with open_output(destination, sample_rate, channels, bit_depth) as write:
            fed = 0
            while fed < frames:
                block = _read(f, source, min(block_size, frames - fed), fed)
                if block.shape[1] == 0:  # the file held fewer samples than its header said
                    break
                fed += block.shape[1]
                write(render(block))
                if progress is not None:
                    progress(fed)
            for start in range(0, latency, block_size):  # silence flushes what the chain still holds
                write(render(np.zeros((channels, min(block_size, latency - start)), np.float32)))
    return sample_rate, fed


def _read(f, source: Path, n: int, position: int) -> np.ndarray:
    """The next block of at most ``n`` samples (from sample ``position``), float32 (channels, n'), finite."""
    try:
        block = f.read(n)
    except Exception as exc:
        raise DreamfxError(f"{source} could not be read as audio ({str(exc).splitlines()[0]})") from None
    check_finite(block, str(source), position)
    return block.astype(np.float32, copy=False)
