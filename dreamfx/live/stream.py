"""The stream around a LiveProcessor: the audio devices (sounddevice / PortAudio), the process settings a live
session needs (no huge-page collapse, no full garbage collections while streaming), run_live, and the lines it
prints (status, latency, soak summary).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
import time
from typing import Callable

import numpy as np

from dreamfx.errors import DreamfxError
from dreamfx.live.native_audio import NativeStream, locked_in_memory
from dreamfx.live.processor import LiveProcessor, LiveStats


def sounddevice():
    """The sounddevice module, or a one-line error saying what to install."""
    try:
        import sounddevice as sd
    except ImportError:
        raise DreamfxError("live audio needs sounddevice: pip install 'dreamfx[live]'") from None
    except OSError:
        raise DreamfxError("live audio needs the PortAudio library: apt-get install libportaudio2") from None
    return sd


def device_listing() -> str:
    """One line per audio device: 'index: name (host API, in/out channels)'."""
    sd = sounddevice()
    apis = sd.query_hostapis()
    lines = [f"{i}: {d['name']} ({apis[d['hostapi']]['name']}, {d['max_input_channels']} in, "
             f"{d['max_output_channels']} out)" for i, d in enumerate(sd.query_devices())]
    return "\n".join(lines) or "(no audio devices)"


def find_audio_device(device: str | int | None, kind: str) -> int | None:
    """The device index for ``device`` (name part or number) with ``kind`` ('input'/'output') channels."""
    sd = sounddevice()
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    try:
        return sd.query_devices(device, kind)["index"]
    except (ValueError, sd.PortAudioError):
        available = "; ".join(device_listing().splitlines()) or "none"
        raise DreamfxError(f"no {kind} audio device {device if device is not None else '(default)'!r}; "
                           f"available: {available}") from None


PR_SET_THP_DISABLE, PR_GET_THP_DISABLE = 41, 42  # from <linux/prctl.h>


@contextlib.contextmanager
def no_huge_page_collapse():
    """Keep the kernel's huge-page collapser (khugepaged) off this process while it streams (Linux).

    NumPy asks for transparent huge pages on every array of 4 MB or more, so after any
    sizeable render the heap holds such areas; khugepaged later collapses them and, on a
    kernel without full preemption, keeps a CPU for milliseconds while the real-time audio
    thread woken on it waits (traced with ftrace: 5.4 ms, at 5.3 ms blocks).
    """
    if not sys.platform.startswith("linux"):
        yield
        return
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    was_disabled = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0)
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)
    try:
        yield
    finally:
        if was_disabled == 0:
            prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0)


@contextlib.contextmanager
def no_full_garbage_collections():
    """Keep Python's cycle collector from walking the whole heap while the stream runs.

    A collection of the oldest generation walks every tracked object with the
    interpreter lock held: about 100-200 ms with torch, onnx and librosa loaded
    (300 000 objects), longer than the worker's headroom, so the blocks it would
    have delivered are played dry (the compiled callback does not need the lock
    and keeps running).  ``gc.freeze()`` (constant time) moves every object that
    exists now out of the collector's reach, so the collections during the
    stream walk only what the stream itself creates; they are given back to it
    afterwards.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_live(processor: LiveProcessor, *, input_device=None, output_device=None, blocksize: int = 256,
             duration: float | None = None, report: Callable[[str], None] | None = None,
             report_every: float = 0.5, should_stop: Callable[[], bool] = lambda: False,
             native: bool = True) -> LiveStats:
    """Run a duplex stream through ``processor`` until ``duration`` s pass, ``should_stop()`` or Ctrl-C.

    native: the compiled callback, which never waits for the interpreter (:mod:`dreamfx.live.native_audio`);
    False runs the same logic as a Python callback through sounddevice (it needs the GIL every period).
    """
    sd = sounddevice()
    devices = (find_audio_device(input_device, "input"), find_audio_device(output_device, "output"))
    try:
        if native:
            stream = NativeStream(sd, processor.layout, processor.sample_rate, blocksize, processor.channels,
                                  devices)
        else:
            stream = sd.Stream(samplerate=processor.sample_rate, blocksize=blocksize, device=devices,
                               channels=processor.channels, dtype="float32", callback=processor.callback,
                               latency="low")
    except sd.PortAudioError as exc:
        raise DreamfxError(f"cannot open the audio device ({exc}); is it busy or does it lack "
                           f"{processor.channels} channels at {processor.sample_rate} Hz? Devices: "
                           + "; ".join(device_listing().splitlines())) from None
    processor.reset()
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)  # the worker's Python code yields the GIL to the audio callback sooner
    processor.start()
    started = time.monotonic()
    next_report = started + report_every
    try:
        with stream, no_huge_page_collapse(), no_full_garbage_collections(), \
                locked_in_memory(processor.callback_memory):
            processor.stats.io_latency = round(sum(stream.latency) * processor.sample_rate)
            if report is not None:
                report(latency_line(processor))
            while (duration is None or time.monotonic() - started < duration) and not should_stop():
                time.sleep(0.02)
                if processor.worker_error is not None:
                    raise DreamfxError(f"the dream worker stopped: {processor.worker_error}")
                if report is not None and time.monotonic() >= next_report:
                    report(status_line(processor))
                    next_report += report_every
    finally:
        processor.stop()
        sys.setswitchinterval(switch_interval)
    return processor.stats


def latency_line(processor: LiveProcessor) -> str:
    """The latency heard, and its parts."""
    stats, rate = processor.stats, processor.sample_rate
    return (f"latency: {(processor.latency + stats.io_latency) / rate * 1000:.1f} ms ({processor.latency} samples "
            f"of dreamfx, {processor.headroom} of them the worker's headroom, + {stats.io_latency} of audio I/O) "
            f"at {rate} Hz")


def soak_summary(processor: LiveProcessor, seconds: float) -> str:
    """What a long run measured: xruns, late blocks, iterations achieved, worker load and latency."""
    s, engine = processor.stats, processor.engine
    lines = [f"soak: {seconds:.0f} s, {s.callbacks} callbacks, {s.chunks} chunks of {processor.chunk} samples, "
             f"preset {processor.preset_name or '(chain)'}", latency_line(processor),
             f"xruns {s.xruns}, late blocks {s.late_blocks}, dropped frames {s.dropped_frames}; worker thread: "
             f"{s.worker_scheduling}"]
    if engine is not None and s.chunks:
        achieved = sorted(s.iterations.elements())
        lines.append(f"iterations achieved per chunk: mean {np.mean(achieved):.2f} of {engine.settings.iterations}, "
                     f"min {achieved[0]}; chunks by count {dict(sorted(s.iterations.items(), reverse=True))}")
    if s.chunks:
        lines.append(f"worker load: mean {100 * s.load_sum / s.chunks:.0f} %, peak {100 * s.peak_load:.0f} %")
    return "\n".join(lines)


def status_line(processor: LiveProcessor) -> str:
    """Levels, dream intensity, iterations, worker load, xruns and late chunks, on one line."""
    s, engine = processor.stats, processor.engine
    db = lambda peak: f"{20 * np.log10(max(peak, 1e-6)):6.1f} dBFS"  # noqa: E731
    dream = ""
    if engine is not None:
        e = engine.stats
        dream = (f" | intensity {engine.settings.intensity:.2f} iterations {e.last_iterations}/"
                 f"{engine.settings.iterations} reduced {e.reduced_chunks} dry {e.deadline_dry_chunks}")
    notice = f" | {processor.notice}" if processor.notice else ""
    return (f"in {db(s.in_peak)} out {db(s.out_peak)}{dream} | load {100 * s.worker_load:3.0f}% "
            f"xruns {s.xruns} late {s.late_blocks}{notice}")
