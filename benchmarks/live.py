"""Live processing on a JACK dummy server: latency, iterations achieved per chunk, xruns, late blocks, load.

Starts ``jackd -d dummy`` (48 kHz, 256-frame periods by default), runs a preset's
chain on a duplex PortAudio stream for ``--seconds`` (the same run as
``dreamfx live --soak``), optionally with a second process spinning on one core
(``--hog``), and prints what a performer would want to know.  With ``--trace``
(root) every xrun gets a scheduler trace and a verdict (dreamfx/testing/sched_trace.py):
an xrun whose trace shows no dreamfx thread caused it is listed, not counted.  With
``--control`` the same run first measures the machine without dreamfx: a dummy jackd of
the same settings and ``jack_metro`` (a plain C client) under the same load, for the
same time; dreamfx's xruns are printed beside the control's.
The dummy driver's capture ports deliver silence; the dream's cost does not
depend on the signal.

    python benchmarks/live.py [--seconds 600] [--blocksize 256] [--preset live-tight] [--guide FILE] [--hog] [--trace] [--control]
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click
from common import machine


@click.command()
@click.option("--seconds", default=60.0, show_default=True)
@click.option("--samplerate", default=48000, show_default=True)
@click.option("--blocksize", default=256, show_default=True)
@click.option("--preset", default="default", show_default=True)
@click.option("--guide", type=click.Path(exists=True, dir_okay=False), help="The recording a guided preset dreams "
              "toward (dreamfx live --guide).")
@click.option("--bypass", is_flag=True, help="The dream at intensity 0 (a control: the same stream, a light worker).")
@click.option("--realtime/--no-realtime", default=True, help="The worker at real-time priority.")
@click.option("--hog/--no-hog", default=False, help="A second process spinning on one core meanwhile.")
@click.option("--threads", default=1, show_default=True, help="Compute threads of the dream (torch, onnxruntime).")
@click.option("--trace/--no-trace", default=False, help="A scheduler trace and a verdict for every xrun (root).")
@click.option("--control", is_flag=True, help="First the same time without dreamfx: jackd + jack_metro, same load.")
def main(seconds: float, samplerate: int, blocksize: int, preset: str, guide: str | None, bypass: bool,
         realtime: bool, hog: bool, threads: int, trace: bool, control: bool) -> None:
    control_xruns = control_run(samplerate, blocksize, seconds, hog) if control else None
    import torch
    torch.set_num_threads(threads)
    from dreamfx import Chain
    from dreamfx.testing.jack_dummy import DummyJackServer
    from dreamfx.testing.sched_trace import SchedulerTrace
    from dreamfx.live.processor import LiveProcessor, headroom_frames
    from dreamfx.live.stream import run_live, soak_summary
    from dreamfx.plugin.presets import load_preset
    log = tempfile.NamedTemporaryFile(suffix=".log")  # jackd's messages: the clients late at each xrun
    with DummyJackServer(f"dreamfx-bench-{os.getpid()}", samplerate, blocksize, Path(log.name)) as server:
        source = load_preset(preset)
        chain = Chain.from_preset(source, **({"intensity": 0.0} if bypass else {}),
                                  **({"guide": str(Path(guide).resolve())} if guide else {}))
        processor = LiveProcessor(chain, samplerate, 2, blocksize, preset_name=preset, realtime=realtime,
                                  headroom=headroom_frames(source, samplerate))
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if hog else None
        traces = Path(tempfile.mkdtemp(prefix="dreamfx-xruns-"))
        tracer = SchedulerTrace(server.pid, blocksize / samplerate, lambda: processor.stats.xruns, traces) \
            if trace else None
        try:
            with tracer or contextlib.nullcontext():
                run_live(processor, blocksize=blocksize, duration=seconds)
        finally:
            if spinner is not None:
                spinner.kill()
        import sounddevice
        sounddevice._terminate()  # PortAudio's JACK client goes before the server
        xrun_lines = server.xrun_lines()
    print(machine())
    print(f"JACK dummy server, {samplerate} Hz, {blocksize}-frame periods, preset {preset!r}"
          f"{f' guided by {Path(guide).name}' if guide else ''}"
          f"{' bypassed (intensity 0)' if bypass else ''}, "
          f"{'a second process spinning on one core' if hog else 'no other load'}, {threads} compute thread(s)")
    print(soak_summary(processor, seconds))
    if control_xruns is not None:
        print(f"xruns: dreamfx {processor.stats.xruns} (jackd logged {len(xrun_lines)} lines); control without dreamfx "
              f"(jackd + jack_metro, same load, {seconds:.0f} s): jackd logged {control_xruns}")
    for line in xrun_lines:
        print("jackd:", line)
    if tracer is not None:
        verdicts = tracer.verdicts()
        print(tracer.error or f"scheduler trace: {sum(x.counts for x in verdicts)} of {len(verdicts)} xruns count "
              f"against dreamfx (traces in {traces})")
        for xrun in verdicts:
            print(f"  {xrun.path.name} (seen at {xrun.seen_at:.3f} s): {'counts' if xrun.counts else 'not counted'}: "
                  f"{xrun.reason}")

def control_run(samplerate: int, blocksize: int, seconds: float, hog: bool) -> int:
    """Xrun lines jackd logs in ``seconds`` with no dreamfx at all: a dummy server of the same settings and
    jack_metro (a C client), with the same second process spinning when ``hog``."""
    import time
    from dreamfx.testing.jack_dummy import DummyJackServer
    log = tempfile.NamedTemporaryFile(suffix=".log")
    with DummyJackServer(f"dreamfx-control-{os.getpid()}", samplerate, blocksize, Path(log.name)) as server:
        metro = subprocess.Popen(["jack_metro", "--bpm", "120"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if hog else None
        try:
            time.sleep(seconds)
        finally:
            for process in (metro, spinner):
                if process is not None:
                    process.kill()
                    process.wait()
        return len(server.xrun_lines())


if __name__ == "__main__":
    main()
