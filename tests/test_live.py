"""Live processing on a real JACK server (dummy driver): PortAudio duplex audio and JACK MIDI ports.

The tests start ``jackd -d dummy`` themselves and stop it by its PID.  A JACK
test client plays a known signal into dreamfx's PortAudio input ports and
records its output ports; MIDI goes from an rtmidi output to dreamfx's virtual
input port.  Without jackd they skip with the reason (fail under
DREAMFX_REQUIRE_SYSTEM=1).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from dreamfx.chain import Chain
from dreamfx.effect import DreamEffect
from tests.conftest import require_module, require_system

SR, BLOCK = 48000, 256


@pytest.fixture(scope="module")
def jack_server():
    require_system("jackd", "jackd2 libportaudio2")
    jack = require_module("jack", "pip install -e '.[test]'")
    sd = require_module("sounddevice", "pip install -e '.[live]' and apt-get install libportaudio2")
    require_module("rtmidi", "pip install -e '.[live]'")
    name = f"dreamfx-test-{os.getpid()}"
    server = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", str(SR), "-p", str(BLOCK)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    for _ in range(100):
        try:
            jack.Client("dreamfx-probe", no_start_server=True).close()
            break
        except jack.JackOpenError:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail("jackd -d dummy did not start")
    sd._terminate()  # PortAudio lists host APIs when it starts: make it see this server
    sd._initialize()
    yield name
    sd._terminate()  # PortAudio's JACK client must go before the server does
    server.terminate()
    server.wait(timeout=10)
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    sd._initialize()


class JackTester:
    """A JACK client that plays ``signal`` (2, n) into PortAudio's inputs and records PortAudio's outputs."""

    def __init__(self, signal: np.ndarray, record_seconds: float):
        import jack
        self.client = jack.Client("dreamfx-tester", no_start_server=True)
        self.outs = [self.client.outports.register(f"out_{i}") for i in range(2)]
        self.ins = [self.client.inports.register(f"in_{i}") for i in range(2)]
        self.signal, self.played = signal, 0
        self.recorded = np.zeros((2, int(record_seconds * SR)), dtype=np.float32)
        self.kept = 0
        self.running = False  # set once connected: play and record from then on
        self.client.set_process_callback(self._process)
        self.client.activate()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()

    def _process(self, frames: int) -> None:
        if not self.running:
            for port in self.outs:
                port.get_array()[:] = 0
            return
        chunk = self.signal[:, self.played:self.played + frames]
        for i, port in enumerate(self.outs):
            buffer = port.get_array()
            buffer[:] = 0
            buffer[:chunk.shape[1]] = chunk[i]
        self.played += frames
        take = min(frames, self.recorded.shape[1] - self.kept)
        for i, port in enumerate(self.ins):
            self.recorded[i, self.kept:self.kept + take] = port.get_array()[:take]
        self.kept += take

    def connect_to_portaudio(self) -> None:
        for _ in range(100):
            names = [p.name for p in self.client.get_ports("PortAudio")]
            if len(names) >= 4:
                break
            time.sleep(0.05)
        for i in range(2):
            self.client.disconnect(f"system:capture_{i + 1}", f"PortAudio:in_{i}")
            self.client.connect(self.outs[i], f"PortAudio:in_{i}")
            self.client.connect(f"PortAudio:out_{i}", self.ins[i])
        self.running = True


def run_in_background(processor, seconds: float):
    from dreamfx.live import run_live
    result = {}

    def target():
        try:
            result["stats"] = run_live(processor, blocksize=BLOCK, duration=seconds)
        except BaseException as exc:  # re-raised by the test
            result["error"] = exc
    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def test_live_passthrough_at_intensity_zero_through_jack(jack_server, measured):
    from dreamfx.live import LiveProcessor
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, (2, 2 * SR)).astype(np.float32)
    processor = LiveProcessor(Chain([DreamEffect(intensity=0.0)]), SR, 2, BLOCK)
    tester = JackTester(noise, record_seconds=4.0)
    try:
        thread, result = run_in_background(processor, 4.5)
        time.sleep(0.3)
        tester.connect_to_portaudio()
        time.sleep(0.5)
        xruns_while_connecting = processor.stats.xruns  # JACK may flag one while its graph is rewired
        thread.join()
    finally:
        tester.close()
    assert "error" not in result, result.get("error")
    stats = result["stats"]
    recorded = tester.recorded[:, :tester.kept]
    # where the played noise comes back: the lag that best matches the first 0.25 s
    probe = noise[0, :SR // 4]
    search = recorded[0, :processor.latency + 8 * BLOCK + probe.size]
    scores = np.correlate(search, probe, mode="valid")
    lag = int(np.argmax(scores))
    back = recorded[:, lag:lag + noise.shape[1]]
    error = np.abs(back - noise[:, :back.shape[1]]).max()
    measured(f"live passthrough on JACK (48 kHz, 256-frame blocks): dreamfx latency {processor.latency} samples, "
             f"measured round trip {lag} samples, max error {error:.1e}, xruns {stats.xruns}, late {stats.late_blocks}")
    assert back.shape[1] >= SR  # at least a second came back
    assert error <= 1e-4, error
    assert processor.latency <= lag <= processor.latency + 4 * BLOCK, (lag, processor.latency)
    assert stats.late_blocks == 0 and stats.xruns == xruns_while_connecting <= 1


def trajectory(effect: DreamEffect, engine) -> list:
    """Record (chunk, intensity, target) after the parameter hooks ran, before each chunk."""
    seen = []
    engine.before_chunk.append(lambda index: seen.append((index, effect.intensity, effect.target)))
    return seen


def test_midi_through_a_jack_port_and_replayed_from_its_recording(jack_server, workdir):
    import rtmidi
    from dreamfx.live import LiveProcessor
    from dreamfx.midi import Automation, MidiControl, open_midi_input
    effect = DreamEffect(intensity=0.2, iterations=2)
    processor = LiveProcessor(Chain([effect]), SR, 2, BLOCK)
    control = MidiControl(effect)
    control.recording = True
    port = open_midi_input(control, virtual="dreamfx-test-in")
    control.attach(SR, 2)
    live = trajectory(effect, processor.engine)
    sender = rtmidi.MidiOut(rtmidi.API_UNIX_JACK)
    sender.open_port(next(i for i, p in enumerate(sender.get_ports()) if "dreamfx-test-in" in p))
    thread, result = run_in_background(processor, 4.5)
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
    sender.close_port()
    port.close_port()
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


def test_overload_degrades_to_fewer_iterations_without_late_blocks(jack_server, measured):
    from dreamfx.live import LiveProcessor
    effect = DreamEffect(intensity=0.8, iterations=256)  # far more than a chunk's time allows
    processor = LiveProcessor(Chain([effect]), SR, 2, BLOCK)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        thread, result = run_in_background(processor, 5.0)
        thread.join()
    finally:
        hog.kill()
    assert "error" not in result, result.get("error")
    stats, engine = result["stats"], processor.engine.stats
    measured(f"overload (256 iterations asked, CPU hog): {stats.chunks} chunks, {engine.reduced_chunks} reduced, "
             f"{engine.deadline_dry_chunks} dry, last {engine.last_iterations} iterations, load "
             f"{100 * stats.worker_load:.0f}%, xruns {stats.xruns}, late blocks {stats.late_blocks}")
    assert stats.chunks >= 40
    assert engine.reduced_chunks + engine.deadline_dry_chunks >= stats.chunks - 1
    assert stats.late_blocks == 0 and stats.xruns == 0


def test_cli_live_runs_and_reports(jack_server):
    result = subprocess.run([sys.executable, "-m", "dreamfx.cli", "live", "--duration", "2"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "latency:" in result.stderr and "iterations" in result.stderr and "stopped:" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--input", "nosuch"], "no input audio device 'nosuch'; available: 0: system"),
    (["--output", "7"], "no output audio device 7; available: 0: system"),
    (["--midi-port", "nosuch"], "MIDI input port 'nosuch' not found; available:"),
])
def test_cli_live_missing_device_or_port(jack_server, args, message):
    result = subprocess.run([sys.executable, "-m", "dreamfx.cli", "live", "--duration", "1", *args],
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.startswith("dreamfx:")]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def test_graphs_are_built_before_streaming():
    """A layer change (MIDI CC5) while streaming must never wait for a trace or an ONNX export."""
    from dreamfx.live import LiveProcessor
    processor = LiveProcessor(Chain([DreamEffect(backend="torchscript")]), SR, 2, BLOCK)
    assert sorted(layer for layer, _ in processor.engine.backend.graphs) == ["conv1", "conv2", "conv3", "conv4",
                                                                             "logits"]
