"""Live processing on a JACK dummy server: latency, iterations achieved per chunk, xruns, fallbacks.

Starts ``jackd -d dummy`` (48 kHz, 256-frame periods by default), runs the
default preset's chain on a duplex PortAudio stream for ``--seconds``, and
prints what a performer would want to know.  The dummy driver's capture ports
deliver silence; the dream's cost does not depend on the signal.

    python benchmarks/live.py [--seconds 60] [--samplerate 48000] [--blocksize 256]
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
import numpy as np
from common import machine


@click.command()
@click.option("--seconds", default=60.0, show_default=True)
@click.option("--samplerate", default=48000, show_default=True)
@click.option("--blocksize", default=256, show_default=True)
@click.option("--preset", default="default", show_default=True)
def main(seconds: float, samplerate: int, blocksize: int, preset: str) -> None:
    from dreamfx import load_preset
    from dreamfx.jack_dummy import DummyJackServer
    from dreamfx.live import LiveProcessor, run_live
    log = tempfile.NamedTemporaryFile(suffix=".log")  # jackd's messages: the clients late at each xrun
    with DummyJackServer(f"dreamfx-bench-{os.getpid()}", samplerate, blocksize, Path(log.name)) as server:
        chain = load_preset(preset).build_chain()
        processor = LiveProcessor(chain, samplerate, 2, blocksize)
        achieved = []
        processor.engine.on_chunk = lambda report: achieved.append(processor.engine.stats.last_iterations)
        lines = []
        stats = run_live(processor, blocksize=blocksize, duration=seconds, report=lines.append, report_every=10)
        import sounddevice
        sounddevice._terminate()  # PortAudio's JACK client goes before the server
        xrun_lines = server.xrun_lines()
    engine, asked = processor.engine.stats, processor.engine.settings.iterations
    counts = np.bincount(achieved, minlength=asked + 1)
    print(machine())
    print(f"JACK dummy server, {samplerate} Hz, {blocksize}-frame blocks, preset {preset!r}, {seconds:.0f} s")
    print(lines[0])
    print(f"chunks {stats.chunks} ({processor.chunk} samples each); iterations asked {asked}; achieved: mean "
          f"{np.mean(achieved):.2f}, min {min(achieved)}; histogram {dict((i, int(c)) for i, c in enumerate(counts) if c)}")
    print(f"xruns {stats.xruns}, late blocks {stats.late_blocks}, dropped frames {stats.dropped_frames}, reduced "
          f"chunks {engine.reduced_chunks}, dry chunks {engine.deadline_dry_chunks}, worker load "
          f"{100 * stats.worker_load:.0f}%")
    for line in xrun_lines:
        print("jackd:", line)


if __name__ == "__main__":
    main()
