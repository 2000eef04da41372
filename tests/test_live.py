"""Live processing on a real JACK server (dummy driver): PortAudio duplex audio and JACK MIDI ports.

The tests start ``jackd -d dummy`` themselves and stop it by its PID.  A JACK
test client in its own process (tests/jack_tester.py) plays a known signal
into dreamfx's PortAudio input ports and records its output ports; MIDI goes from an rtmidi output to dreamfx's virtual
input port.  Without jackd they skip with the reason (fail under
DREAMFX_REQUIRE_SYSTEM=1).

What a late timer on a shared machine can change is printed, never asserted: xruns (JACK's dummy driver
logs them on this VM with no dreamfx running at all), late blocks, chunk counts.  The tests assert what
dreamfx controls: what comes back equals the input at the reported latency, piece by piece across any xrun;
a stall is filled dry without a gap; MIDI, program change and learn do what they say; and the compiled
callback keeps serving the stream while Python is held up for a whole second, which a Python callback cannot
(a margin of two orders of magnitude, beyond any VM's noise).
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from dreamfx.plugin.chain import Chain
from dreamfx.plugin.effect import DreamEffect
from conftest import DREAMFX, cli_subprocess, require_lv2, require_module, require_system

SR, BLOCK = 48000, 256


class JackRecord:
    """The running test server, what it logged since the test began, and a scheduler trace of the test's
    stream (dreamfx.testing.sched_trace) where the kernel allows one."""

    def __init__(self, server, first_line: int, trace_dir: Path):
        from dreamfx.testing.sched_trace import SchedulerTrace
        self.server, self.first_line = server, first_line
        self.processor = None  # the stream the trace watches (run_in_background sets it)
        self.trace = SchedulerTrace(server.pid, BLOCK / SR, lambda: self.processor.stats.xruns if self.processor
                                    else 0, trace_dir)

    def report_xruns(self, stats, measured) -> None:
        """Print the stream's xruns with the scheduler trace's verdict on each (a late timer interrupt of
        JACK's driver, an audio thread kept from a CPU: see dreamfx.testing.sched_trace) and jackd's log: a
        measurement of the machine as much as of dreamfx, never an assertion."""
        if self.trace.error:
            if stats.xruns:
                measured(f"{stats.xruns} xrun(s), {self.trace.error}; {self.xrun_report()}")
            return
        for xrun in self.trace.verdicts():
            measured(f"xrun, trace: {'not cleared' if xrun.counts else 'not dreamfx'}: {xrun.reason} ({xrun.path}); "
                     f"{self.xrun_report()}")

    def xrun_report(self) -> str:
        """jackd's xrun lines since the test began, each once with its count."""
        lines = collections.Counter(self.server.xrun_lines(self.first_line))
        return "jackd: " + (" | ".join(f"{n} x {line}" for line, n in lines.items()) if lines else "no xrun logged")


@pytest.fixture(scope="module")
def jack_daemon(tmp_path_factory):
    require_system("jackd", "jackd2 libportaudio2")
    require_module("jack", "pip install -e '.[test]'")
    sd = require_module("sounddevice", "pip install -e '.[live]' and apt-get install libportaudio2")
    require_module("rtmidi", "pip install -e '.[live]'")
    from dreamfx.testing.jack_dummy import DummyJackServer
    log_path = tmp_path_factory.mktemp("jackd") / "jackd.log"
    with DummyJackServer(f"dreamfx-test-{os.getpid()}", SR, BLOCK, log_path) as server:
        sd._terminate()  # PortAudio lists host APIs when it starts: make it see this server
        sd._initialize()
        yield server
        sd._terminate()  # PortAudio's JACK client must go before the server does
    sd._initialize()


@pytest.fixture
def jack_server(jack_daemon, tmp_path):
    record = JackRecord(jack_daemon, len(jack_daemon.log_lines()), tmp_path)
    with record.trace:
        yield record


def run_in_background(processor, seconds: float, jack_server: JackRecord, native: bool = True):
    from dreamfx.live.stream import run_live
    result = {}
    jack_server.processor = processor

    def target():
        try:
            result["stats"] = run_live(processor, blocksize=BLOCK, duration=seconds, native=native)
        except BaseException as exc:  # re-raised by the test
            result["error"] = exc
    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


@dataclass
class Take:
    """A signal played through a stream and recorded back (see play_and_record)."""

    recorded: np.ndarray         # (2, m) what the stream's outputs gave, from the first played sample on
    stats: object                # the stream's LiveStats
    xruns_while_connecting: int  # xruns flagged before the tester began to play (JACK may flag one as it
    #                              rewires the graph)
    playing_from: int            # the stream's callback number when the tester began to play
    xruns_while_recording: int   # xruns flagged from then until the recording was complete


def play_and_record(processor, signal: np.ndarray, seconds: float, workdir: Path, jack_server: JackRecord,
                    playing: dict | None = None, while_playing: Callable[[], None] | None = None) -> Take:
    """Stream through ``processor`` for ``seconds`` while a JACK client in its own process
    (tests/jack_tester.py) plays ``signal`` (2, n) into its inputs and records its outputs.  ``playing``, if
    given, gets the stream's callback number when the signal began (key "from") as soon as it is known;
    ``while_playing`` is called in this thread once the signal began."""
    playing = {} if playing is None else playing
    np.save(workdir / "signal.npy", signal)
    tester = subprocess.Popen([sys.executable, str(Path(__file__).parent / "jack_tester.py"),
                               str(workdir / "signal.npy"), str(workdir / "recorded.npy"), str(seconds - 0.5)],
                              stdout=subprocess.PIPE, text=True)
    try:
        thread, result = run_in_background(processor, seconds, jack_server)
        assert tester.stdout.readline().strip() == "playing"
        playing["from"], xruns_while_connecting = processor.stats.callbacks, processor.stats.xruns
        if while_playing is not None:
            while_playing()
        assert tester.stdout.readline().strip() == "recorded"
        xruns_while_recording = processor.stats.xruns - xruns_while_connecting
        thread.join()
        tester.wait(timeout=30)
    finally:
        tester.kill()
    assert "error" not in result, result.get("error")
    return Take(np.load(workdir / "recorded.npy"), result["stats"], xruns_while_connecting, playing["from"],
                xruns_while_recording)


@dataclass
class RoundTrip:
    """The played signal found in a recording (see round_trip)."""

    lag: int                          # recording sample where the signal's first sample came back
    matched: list[tuple[int, int]]    # recording pieces (start, end) equal to the signal (within 1e-4)
    unmatched: list[tuple[int, int]]  # pieces that were not
    error: float                      # the largest difference in the matched pieces

    def covers(self, start: int, end: int) -> bool:
        """Whether the recording samples start..end were compared and lie in matched pieces only."""
        matched = [(a, b) for a, b in self.matched if a < end and start < b]
        return bool(matched) and matched[0][0] <= start and matched[-1][1] >= end and \
            not any(a < end and start < b for a, b in self.unmatched)


def round_trip(processor, signal: np.ndarray, take: Take, piece: int = SR // 10) -> RoundTrip:
    """Where the played ``signal`` comes back in the recording (the lag that best matches its first 0.25 s),
    compared with it piece by piece.  In an xrun JACK skips a cycle of a client, so what comes back after it
    is shifted by whole blocks: a piece matches when it equals the signal at the lag give or take up to 16
    blocks, and only a piece an xrun fell into (or a gap) fails."""
    probe = signal[0, :SR // 4]
    search = take.recorded[0, :processor.latency + 8 * BLOCK + probe.size]
    lag = int(np.argmax(np.correlate(search, probe, mode="valid")))
    result = RoundTrip(lag, [], [], 0.0)
    end = min(take.recorded.shape[1], lag + signal.shape[1])
    for start in range(lag, end - piece + 1, piece):
        errors = [float(np.abs(take.recorded[:, start:start + piece] - signal[:, at:at + piece]).max())
                  for at in (start - lag - k * BLOCK for k in range(-16, 17)) if 0 <= at <= signal.shape[1] - piece]
        best = min(errors, default=float("inf"))
        if best <= 1e-4:
            result.matched.append((start, start + piece))
            result.error = max(result.error, best)
        else:
            result.unmatched.append((start, start + piece))
    return result


def test_live_passthrough_at_intensity_zero_through_jack(jack_server, workdir, measured):
    from dreamfx.live.processor import LiveProcessor
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, (2, 2 * SR)).astype(np.float32)
    processor = LiveProcessor(Chain([DreamEffect(intensity=0.0)]), SR, 2, BLOCK)
    take = play_and_record(processor, noise, 4.5, workdir, jack_server)
    stats, trip = take.stats, round_trip(processor, noise, take)
    measured(f"live passthrough on JACK (48 kHz, 256-frame blocks): dreamfx latency {processor.latency} samples "
             f"(headroom {processor.headroom}), measured round trip {trip.lag} samples, {len(trip.matched)} pieces of "
             f"0.1 s equal to the input (max error {trip.error:.1e}), {len(trip.unmatched)} not; xruns {stats.xruns} "
             f"({take.xruns_while_connecting} while connecting, {take.xruns_while_recording} while recording), late "
             f"{stats.late_blocks}")
    jack_server.report_xruns(stats, measured)
    # only a piece an xrun fell into may differ (at most two per xrun: it may straddle their border); a late
    # block is filled with the dry signal, which at intensity 0 is the same
    assert len(trip.unmatched) <= 2 * take.xruns_while_recording and len(trip.matched) >= 10, trip
    assert processor.latency <= trip.lag <= processor.latency + 4 * BLOCK, (trip.lag, processor.latency)


def test_a_stalled_dream_is_filled_dry_without_an_xrun(jack_server, workdir, measured):
    """The worker stops for 50 ms inside the dream, longer than its headroom: the callback plays the dry
    signal for the blocks it lacks (counted as late), never xruns, and skips the late output once it comes.
    At intensity 0 dry and dreamt are the same signal, so what comes back is the input, without a gap."""
    from dreamfx.live.processor import LiveProcessor
    noise = np.random.default_rng(1).uniform(-0.3, 0.3, (2, 3 * SR)).astype(np.float32)
    processor = LiveProcessor(Chain([DreamEffect(intensity=0.0)]), SR, 2, BLOCK, headroom=1024)
    stalled, playing = [], {}  # (seconds stalled, the stream's callback number when it began); see play_and_record

    def stall(index: int) -> None:
        if not stalled and processor.stats.callbacks >= playing.get("from", np.inf) + SR // BLOCK:
            started, callback = time.perf_counter(), processor.stats.callbacks  # a second into the signal
            time.sleep(0.05)
            stalled.append((time.perf_counter() - started, callback))
    processor.engine.before_chunk.append(stall)
    take = play_and_record(processor, noise, 5.0, workdir, jack_server, playing)
    stats, trip = take.stats, round_trip(processor, noise, take)
    # the blocks played dry lie within 0.25 s of the stall in the recording (50 ms stall + a chunk + slack)
    stall_at = (stalled[0][1] - take.playing_from) * BLOCK
    measured(f"dream stalled {1e3 * stalled[0][0]:.0f} ms (headroom {1e3 * processor.headroom / SR:.0f} ms): late "
             f"blocks {stats.late_blocks}, xruns {stats.xruns} ({take.xruns_while_connecting} while connecting, "
             f"{take.xruns_while_recording} while recording), round trip {trip.lag} (latency {processor.latency}), "
             f"{len(trip.matched)} pieces of 0.1 s equal to the input (max error {trip.error:.1e}), unmatched "
             f"{trip.unmatched} (the stall at {stall_at})")
    jack_server.report_xruns(stats, measured)
    # the stall made late blocks, and the recording around it is the input: seamless, unless an xrun of the
    # machine's fell there too (then the pieces it touched are left out, as everywhere)
    assert stats.late_blocks >= 1
    assert trip.covers(stall_at - SR // 10, stall_at + SR // 4) or take.xruns_while_recording, trip
    assert len(trip.unmatched) <= 2 * take.xruns_while_recording and len(trip.matched) >= 10, trip
    assert processor.latency <= trip.lag <= processor.latency + 4 * BLOCK, (trip.lag, processor.latency)


def callbacks_while(processor, action: Callable[[], None]) -> tuple[int, float]:
    """(callbacks the stream served, seconds) while ``action`` ran on this thread."""
    before, started = processor.stats.callbacks, time.perf_counter()
    action()
    return processor.stats.callbacks - before, time.perf_counter() - started


def test_a_full_garbage_collection_in_the_dream_keeps_the_stream_served(jack_server, measured):
    """Three full collections of the whole heap (the stream's freeze undone for them: 100+ ms each with the
    interpreter lock held) on the worker, inside the dream of the default preset: the compiled callback does
    not need the lock and keeps being called; the worker is late for them, and the blocks it misses are
    filled dry.  (A Python callback would get no call at all while the lock is held.)"""
    import gc
    from dreamfx.live.processor import LiveProcessor
    processor = LiveProcessor(Chain.from_preset("default"), SR, 2, BLOCK)
    collections = []  # (objects walked, callbacks served meanwhile, seconds)

    def collect(index: int) -> None:
        if index in (20, 40, 60):
            gc.unfreeze()
            walked = len(gc.get_objects())
            collections.append((walked, *callbacks_while(processor, gc.collect)))
            gc.freeze()
    processor.engine.before_chunk.append(collect)
    thread, result = run_in_background(processor, 7.0, jack_server)
    thread.join()
    assert "error" not in result, result.get("error")
    stats = result["stats"]
    measured(f"full collections in the dream: {', '.join(f'{n} objects in {1e3 * t:.0f} ms ({c} callbacks served)' for n, c, t in collections)}"
             f"; xruns {stats.xruns}, late blocks {stats.late_blocks}, chunks {stats.chunks}")
    jack_server.report_xruns(stats, measured)
    assert len(collections) == 3 and min(n for n, _, _ in collections) > 100_000
    served, seconds = sum(c for _, c, _ in collections), sum(t for _, _, t in collections)
    assert served >= 0.25 * seconds * SR / BLOCK, (served, seconds)


def hold_the_interpreter(seconds: float) -> None:
    """Keep the interpreter lock on this thread for ``seconds``: a pure-Python loop under a switch interval
    longer than the loop, so no other Python thread runs meanwhile (as a C extension that keeps the lock)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(10 * seconds)
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            pass
    finally:
        sys.setswitchinterval(interval)


def serve_while_the_interpreter_is_held(native: bool, jack_server, workdir, measured) -> tuple[float, object]:
    """Play noise through a dreamless chain while this thread holds the interpreter lock for a second, a
    second into the signal; returns (callbacks served during that second / the callbacks it should have had,
    the round trip of the recording)."""
    from dreamfx.live.processor import LiveProcessor
    noise = np.random.default_rng(2).uniform(-0.3, 0.3, (2, 4 * SR)).astype(np.float32)
    processor = LiveProcessor(Chain([DreamEffect(intensity=0.0)]), SR, 2, BLOCK, headroom=1024)
    held = {}

    def hold() -> None:
        time.sleep(1.0)
        held["callbacks"], held["seconds"] = callbacks_while(processor, lambda: hold_the_interpreter(1.0))
    take = play_and_record(processor, noise, 5.5, workdir, jack_server, while_playing=hold) if native else None
    if not native:  # a Python callback: no recording (JACK drops a client that stalls its graph for a second)
        thread, result = run_in_background(processor, 3.0, jack_server, native=False)
        hold()
        thread.join()
    served = held["callbacks"] / (held["seconds"] * SR / BLOCK)
    trip = round_trip(processor, noise, take) if take is not None else None
    measured(f"interpreter lock held {held['seconds']:.2f} s by another thread, {'compiled' if native else 'Python'} "
             f"callback: {held['callbacks']} callbacks served ({100 * served:.0f} % of the period's), late blocks "
             f"{processor.stats.late_blocks}, xruns {processor.stats.xruns}"
             + (f", {len(trip.matched)} pieces of 0.1 s equal to the input, {len(trip.unmatched)} not" if trip else ""))
    return served, (take, trip)


def test_the_compiled_callback_serves_the_stream_while_python_is_held_for_a_second(jack_server, workdir, measured):
    """While another thread keeps the interpreter lock for a whole second, callbacks keep arriving (the worker,
    a Python thread, cannot run: the callback fills the output with the dry signal) and the output keeps
    flowing: at intensity 0 the recording equals the input all along, across the held second too."""
    served, (take, trip) = serve_while_the_interpreter_is_held(True, jack_server, workdir, measured)
    assert served >= 0.5, served
    assert take.stats.late_blocks >= 1  # the worker was held up: the dry signal filled in
    # 30 pieces of 0.1 s compared; only a piece an xrun fell into may differ (a late machine can cost many: a run here
    # saw 41 xruns and 22 matched pieces while another process trained a network)
    assert len(trip.matched) + len(trip.unmatched) >= 30 and len(trip.matched) >= 10, trip
    assert len(trip.unmatched) <= 2 * take.xruns_while_recording, trip


def test_a_python_callback_stalls_while_python_is_held(jack_server, workdir, measured):
    """The same second with the callback in Python (sounddevice's): it needs the lock, so it gets almost no
    call at all.  This is what the test above tells apart."""
    served, _ = serve_while_the_interpreter_is_held(False, jack_server, workdir, measured)
    assert served <= 0.05, served


def test_a_late_callback_is_counted_as_an_xrun(jack_server, measured):
    """A callback that overruns its period by three periods is counted as an xrun (by the callback's one logic,
    dreamfx.live.native_audio.exchange, here run as the Python callback so that it can be made to sleep), and JACK
    names PortAudio's client in its log."""
    from dreamfx.live.processor import LiveProcessor

    class OneSlowBlock(LiveProcessor):
        def callback(self, indata, outdata, frames, time_info, status):
            super().callback(indata, outdata, frames, time_info, status)
            if self.stats.callbacks == 200:
                time.sleep(3 * BLOCK / SR)  # three periods

    processor = OneSlowBlock(Chain([DreamEffect(intensity=0.0)]), SR, 2, BLOCK)
    thread, result = run_in_background(processor, 2.0, jack_server, native=False)
    thread.join()
    assert "error" not in result, result.get("error")
    stats = result["stats"]
    jack_server.report_xruns(stats, measured)
    assert stats.xruns >= 1 and "PortAudio" in jack_server.xrun_report(), jack_server.xrun_report()


def trajectory(effect: DreamEffect, engine) -> list:
    """Record (chunk, intensity, target) after the parameter hooks ran, before each chunk."""
    seen = []
    engine.before_chunk.append(lambda index: seen.append((index, effect.intensity, effect.target)))
    return seen


def test_midi_through_a_jack_port_and_replayed_from_its_recording(jack_server, workdir):
    import rtmidi
    from dreamfx.live.processor import LiveProcessor
    from dreamfx.plugin.midi import Automation, MidiControl
    from dreamfx.live.midi_ports import close_midi_port, open_midi_input
    effect = DreamEffect(intensity=0.2, iterations=2)
    control = MidiControl(effect)
    processor = LiveProcessor(Chain([effect]), SR, 2, BLOCK, control=control)
    control.recording = True
    port = open_midi_input(virtual="dreamfx-test-in")
    control.source = port.get_message
    live = trajectory(effect, processor.engine)
    sender = rtmidi.MidiOut(rtmidi.API_UNIX_JACK)
    sender.open_port(next(i for i, p in enumerate(sender.get_ports()) if "dreamfx-test-in" in p))
    thread, result = run_in_background(processor, 4.5, jack_server)
    time.sleep(0.5)
    for value in range(0, 128, 16):      # a sweep of the mod wheel, slower than a chunk (93 ms)
        sender.send_message([0xB0, 1, value])
        time.sleep(0.12)
    sender.send_message([0xB0, 1, 127])
    time.sleep(0.5)
    sender.send_message([0x90, 61, 100])  # note on: class 61 % 8
    time.sleep(0.5)
    during = (effect.target, effect.intensity)
    sender.send_message([0x80, 61, 0])
    time.sleep(0.5)
    thread.join()
    close_midi_port(sender)
    close_midi_port(port)
    assert "error" not in result, result.get("error")
    intensities = [i for _, i, _ in live]
    sweep = intensities[intensities.index(0.0):intensities.index(1.0) + 1]  # from CC value 0 to 127
    assert len(set(sweep)) >= 3 and all(b >= a for a, b in zip(sweep, sweep[1:]))  # chunk by chunk, upward
    assert during == (effect.class_names[61 % len(effect.class_names)], pytest.approx(100 / 127))
    assert effect.target is None and effect.intensity == 1.0  # note-off restored the objective

    # the recording, rendered offline, moves the parameters on the same chunks
    control.save_recording(workdir / "performance.mid", SR)
    replayed = DreamEffect(intensity=0.2, iterations=2)
    Automation(workdir / "performance.mid").attach(MidiControl(replayed), SR, 2)
    offline = trajectory(replayed, replayed.engine(SR, 2))
    replayed(np.zeros((2, len(live) * processor.chunk), np.float32), SR)
    assert len(control.recorded) >= 11
    assert offline[:len(live)] == live


def test_overload_degrades_to_fewer_iterations(jack_server, measured):
    from dreamfx.live.processor import LiveProcessor
    effect = DreamEffect(intensity=0.8, iterations=256)  # far more than a chunk's time allows
    # the headroom a measurement would give such a dream (at most a chunk), without a minute of measuring
    processor = LiveProcessor(Chain([effect]), SR, 2, BLOCK, headroom=effect.chunk_samples(SR))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        thread, result = run_in_background(processor, 5.0, jack_server)
        thread.join()
    finally:
        hog.kill()
    assert "error" not in result, result.get("error")
    stats, engine = result["stats"], processor.engine.stats
    measured(f"overload (256 iterations asked, CPU hog): {stats.chunks} chunks, {engine.reduced_chunks} reduced, "
             f"{engine.deadline_dry_chunks} dry, last {engine.last_iterations} iterations, load "
             f"{100 * stats.worker_load:.0f}%, xruns {stats.xruns}, late blocks {stats.late_blocks}")
    jack_server.report_xruns(stats, measured)
    # every chunk after the first ran out of time: its dream was cut short (or skipped), never the stream
    assert stats.chunks >= 10
    assert engine.reduced_chunks + engine.deadline_dry_chunks >= stats.chunks - 1


def test_program_change_and_learn_through_a_jack_port(jack_server, measured):
    from dreamfx.live.processor import LiveProcessor
    from dreamfx.plugin.midi import MidiControl
    from dreamfx.live.midi_ports import close_midi_port, open_midi_input
    from dreamfx.plugin.presets import load_preset

    def factory(name):
        return Chain.from_preset(name), load_preset(name).midi
    chain, midi_map = factory("default")
    control = MidiControl(chain.dream_effects[0], midi_map)
    processor = LiveProcessor(chain, SR, 2, BLOCK, control=control, chain_factory=factory,
                              programs=("default", "subtle-shimmer"), preset_name="default")
    control.learn("mix")
    port = open_midi_input(virtual="dreamfx-switch-in")
    control.source = port.get_message
    sender = jack_midi_sender("dreamfx-switch-in")
    thread, result = run_in_background(processor, 8.0, jack_server)
    time.sleep(1.0)
    sender.send_message([0xB0, 20, 64])   # learned: CC20 -> mix
    time.sleep(0.5)
    learned_mix = chain.dream_effects[0].mix
    sender.send_message([0xC0, 1])        # program change 1: subtle-shimmer
    for _ in range(60):
        if processor.stats.switches:
            break
        time.sleep(0.1)
    time.sleep(0.3)
    sender.send_message([0xB0, 20, 0])    # the learned binding survives the switch
    time.sleep(0.5)
    thread.join()
    close_midi_port(sender)
    close_midi_port(port)
    assert "error" not in result, result.get("error")
    stats = result["stats"]
    assert control.learned == [(20, "mix")] and learned_mix == pytest.approx(64 / 127)
    assert processor.preset_name == "subtle-shimmer" and stats.switches == 1
    shimmer = processor.chain.dream_effects[0]
    assert shimmer.layer == "conv1" and shimmer.mix == 0.0 and control.effect is shimmer
    measured(f"program change and learn: late blocks {stats.late_blocks}, xruns {stats.xruns}")
    jack_server.report_xruns(stats, measured)


def test_cli_live_runs_and_reports(jack_server):
    """Without --preset: live-jazz, the taggers' live student, with its preset's headroom (live.headroom_ms 24)."""
    result = cli_subprocess("live", "--duration", "2", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "latency:" in result.stderr and "iterations" in result.stderr and "stopped:" in result.stdout
    assert "samples of dreamfx, 1152 of them the worker's headroom" in result.stderr  # 24 ms at 48 kHz


def test_cli_live_soak_prints_its_summary(jack_server, measured):
    result = cli_subprocess("live", "--preset", "default", "--soak", "3", "--headroom", "40", timeout=120)
    assert result.returncode == 0, result.stderr
    summary = result.stdout[result.stdout.index("soak: 3 s"):]
    measured("dreamfx live --soak 3: " + " | ".join(summary.splitlines()))
    latency = re.search(r"latency: ([\d.]+) ms \((\d+) samples of dreamfx, (\d+) of them the worker's headroom, \+ "
                        r"(\d+) of audio I/O\)", summary)
    assert latency and int(latency[3]) == 1920
    assert abs(float(latency[1]) - (int(latency[2]) + int(latency[4])) / 48) < 0.1
    chunks = int(re.search(r"(\d+) chunks of 4456 samples", summary)[1])
    iterations = re.search(r"iterations achieved per chunk: mean ([\d.]+) of 8, min (\d+); chunks by count (.+)",
                           summary)
    assert chunks >= 1 and 0 < float(iterations[1]) <= 8 and sum(ast.literal_eval(iterations[3]).values()) == chunks
    assert re.search(r"xruns \d+, late blocks \d+, dropped frames \d+", summary)
    assert re.search(r"worker load: mean \d+ %, peak \d+ %", summary)


def test_cli_live_with_an_lv2_stage_stays_under_100_ms(jack_server, measured):
    """live-tight's dream into mda's Overdrive (LV2): the plugin runs on the worker with the chain."""
    overdrive = "http://drobilla.net/plugins/mda/Overdrive"
    require_lv2(overdrive, "mda-lv2")
    result = cli_subprocess("live", "--preset", "live-tight", "--chain", f"dream,lv2:{overdrive},Compressor",
                            "--soak", "3", timeout=180)
    assert result.returncode == 0, result.stderr
    summary = result.stdout[result.stdout.index("soak: 3 s"):]
    measured("dreamfx live --preset live-tight with an LV2 Overdrive: " + " | ".join(summary.splitlines()))
    latency = re.search(r"latency: ([\d.]+) ms \((\d+) samples of dreamfx", summary)
    assert latency and int(latency[2]) / 48 <= 100.0  # dreamfx's part at 48 kHz (audio I/O adds its blocks)
    assert re.search(r"iterations achieved per chunk: mean [\d.]+ of 4", summary)


@pytest.mark.parametrize("args, message", [
    (["--input", "nosuch"], "no input audio device 'nosuch'; available: 0: system"),
    (["--output", "7"], "no output audio device 7; available: 0: system"),
    (["--midi-port", "nosuch"], "MIDI input port 'nosuch' not found; available:"),
    # the path a busy device takes too (PortAudio refuses to open the stream); JACK has no exclusive devices
    (["--channels", "8"], "cannot open the audio device (Error opening Stream: Invalid number of channels [PaErrorCode -9998]); is it busy or does it lack 8 "
                          "channels at 48000 Hz? Devices: 0: system"),
])
def test_cli_live_missing_device_or_port(jack_server, args, message):
    result = cli_subprocess("live", "--duration", "1", *args, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.startswith("dreamfx:")]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr



def jack_midi_sender(port_name: str, wait: float = 60.0):
    """An rtmidi output on JACK connected to the input port named ``port_name`` (waits for it to appear)."""
    import rtmidi
    sender = rtmidi.MidiOut(rtmidi.API_UNIX_JACK)
    for _ in range(int(wait / 0.1)):
        ports = [i for i, p in enumerate(sender.get_ports()) if port_name in p]
        if ports:
            sender.open_port(ports[0])
            return sender
        time.sleep(0.1)
    pytest.fail(f"MIDI port {port_name} did not appear")


def test_cli_live_learn_saves_the_map_into_the_preset(jack_server, workdir):
    from dreamfx.live.midi_ports import close_midi_port
    from dreamfx.plugin.presets import load_preset, save_preset
    mine = workdir / "mine.toml"
    preset = load_preset("default")
    # one program: without a list, MIDI would build every shipped preset's chain first (this test is about learning)
    preset.midi = dataclasses.replace(preset.midi_map(), programs=("default",))
    save_preset(preset, mine)
    cli = subprocess.Popen([*DREAMFX, "live", "--preset", str(mine), "--midi-virtual",
                            "dreamfx-learn-in", "--learn", "step", "--duration", "6"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sender = jack_midi_sender("dreamfx-learn-in")
    time.sleep(1.0)
    sender.send_message([0xB0, 21, 100])
    out, err = cli.communicate(timeout=120)
    close_midi_port(sender)
    assert cli.returncode == 0, err
    assert f"MIDI learn: CC21 -> step; saved to {mine}" in out
    learned = load_preset(mine)
    assert learned.midi.cc[21] == "step" and 4 not in learned.midi.cc  # CC4 moved step before; now CC21 does
    assert learned.midi.cc[1] == "intensity" and learned.dream == load_preset("default").dream
    shipped = cli_subprocess("live", "--midi-virtual", "x", "--learn", "mix", "--duration", "1", timeout=60)
    assert shipped.returncode == 2 and "--learn would change the shipped preset 'live-jazz': add --save-preset" \
        in shipped.stderr
