"""Live duplex processing: the audio callback only copies memory; a worker thread runs the chain.

    audio callback (PortAudio thread, compiled: no GIL)    worker thread
    input  -> inbox ring ------------------->  chunk = inbox (one dream chunk)
    input  -> dry delay ring                   queued MIDI applied, deadline set
    output <- outbox ring <------------------  outbox <- chain(chunk, reset=False)
            (or the dry delay ring, when the worker is late)

The callback is compiled (:mod:`dreamfx.live.native_audio`) and never waits for
the interpreter lock, whatever Python does meanwhile.  Every buffer is
allocated before the stream starts.  The worker thread runs at a real-time
priority below the audio threads' where the system allows it
(:func:`real_time_priority`), and ``dreamfx live`` computes on one thread by
default, so another busy process delays neither.

Latency: the worker starts a chunk when its last sample has arrived and must
deliver it before the outbox runs dry, so the outbox is primed with one chunk,
plus a *headroom*, plus one callback block.  The headroom is measured before
the stream starts (the slowest of a few chunks dreamt at full intensity, divided
by ``load_target``, at most one chunk) unless given.  Each chunk's dream then
gets a deadline (the time until the outbox would run dry, times
``load_target``): under load it runs fewer iterations, then none (the chunk
passes dry; overlap-add crossfades the change).  Only if it is later still does
the callback play the dry signal for a block, and counts it.

Switching presets (MIDI program change, :meth:`LiveProcessor.program_change`):
every preset a program change can reach is built, with its dream-step graphs,
before the stream starts.  The worker primes the new chain with the last few
chunks of input (no dreaming, so it is quick), runs the next chunk through both
chains and crossfades them over that chunk.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dreamfx.plugin.chain import Chain
from dreamfx.engine.streaming import DreamEngine, EngineStats
from dreamfx.errors import DreamfxError
from dreamfx.plugin.midi import MidiControl
from dreamfx.plugin.presets import MidiMap, Preset
from dreamfx.live.native_audio import (CALLBACKS, DROPPED_FRAMES, LAST_XRUN, LATE_BLOCKS, N_COUNTERS, OWED, XRUNS,
                                       callback_layout, exchange)
from dreamfx.dsp.canvas import slope_kernel
from dreamfx.dsp.ringbuffer import RingBuffer

MAX_BLOCK = 8192  # the largest callback block the buffers are sized for
# The worker's real-time priority: the lowest, above every normal process (a busy core must not delay the
# dream) and below every audio thread (JACK's driver runs at 10 by default, its clients' threads, PortAudio's
# callback among them, at 5; at 10 the worker made them late).
WORKER_PRIORITY = 1


@dataclass
class LiveStats:
    """Counters of a live session: the callback's (kept in ``counters``, an int64 array the compiled callback
    writes, see :mod:`dreamfx.live.native_audio`) and the worker's."""

    chunks: int = 0            # chunks the worker processed
    worker_load: float = 0.0   # worker time per chunk / chunk duration (running average)
    in_peak: float = 0.0       # peak input level of the latest chunk
    out_peak: float = 0.0      # peak output level of the latest chunk
    switches: int = 0          # preset switches done (each crossfaded over one chunk)
    peak_load: float = 0.0     # the largest worker time per chunk / chunk duration
    iterations: collections.Counter = field(default_factory=collections.Counter)  # iterations achieved -> chunks
    io_latency: int = 0        # samples the audio API adds (input + output), known once the stream runs
    load_sum: float = 0.0      # sum of every chunk's load (mean = load_sum / chunks)
    worker_scheduling: str = ""  # how the worker thread is scheduled (see real_time_priority)
    counters: np.ndarray = field(default_factory=lambda: np.zeros(N_COUNTERS, np.int64), repr=False)

    @property
    def callbacks(self) -> int:
        return int(self.counters[CALLBACKS])

    @property
    def xruns(self) -> int:
        """Blocks PortAudio flagged with an input/output over- or underflow."""
        return int(self.counters[XRUNS])

    @property
    def late_blocks(self) -> int:
        """Blocks played dry because the worker had no output ready."""
        return int(self.counters[LATE_BLOCKS])

    @property
    def dropped_frames(self) -> int:
        """Input frames lost because the inbox was full."""
        return int(self.counters[DROPPED_FRAMES])

    def __repr__(self) -> str:
        last = f" (the last at callback {self.counters[LAST_XRUN]})" if self.xruns else ""
        return (f"LiveStats(callbacks={self.callbacks}, xruns={self.xruns}{last}, late_blocks={self.late_blocks}, "
                f"dropped_frames={self.dropped_frames}, chunks={self.chunks}, worker_load={self.worker_load:.3f}, "
                f"switches={self.switches})")


@dataclass
class PresetSwitch:
    """A program preset's chain, built with its dream-step graphs before the stream started."""

    name: str
    chain: Chain
    engine: DreamEngine | None
    midi_map: MidiMap | None


# Builds a preset's chain by name: (chain, its MIDI map or None for the default).
ChainFactory = Callable[[str], tuple[Chain, MidiMap | None]]


class LiveProcessor:
    """The two halves of live processing, independent of the audio API.

    chain: the effects; its first DreamEffect sets the chunk size.
    blocksize: frames per callback (the callback also accepts other sizes up to MAX_BLOCK).
    load_target: share of the time until the output runs dry that the dream may use.
    headroom: frames the worker has for a chunk (None: :meth:`measure_headroom`); part of the latency.
    realtime: run the worker at real-time priority :data:`WORKER_PRIORITY` where the system allows it.
    control: MIDI control of the dream; its queued messages are applied before each chunk.
    chain_factory / programs: for preset switching; program change n selects ``programs[n]``; each is built
    here, before any stream starts.
    """

    def __init__(self, chain: Chain, sample_rate: int, channels: int, blocksize: int, load_target: float = 0.7,
                 headroom: int | None = None, realtime: bool = True, control: MidiControl | None = None,
                 chain_factory: ChainFactory | None = None, programs: tuple[str, ...] = (), preset_name: str = ""):
        self.chain, self.sample_rate, self.channels = chain, sample_rate, channels
        self.load_target, self.realtime = load_target, realtime
        self.control, self.programs = control, programs
        if control is not None:
            control.on_program, control.sample_rate = self.program_change, sample_rate
        self.preset_name = preset_name
        self.notice = ""  # the latest switch or MIDI-learn event, for the status line
        chain.check_rate(sample_rate)
        self.engine = self._engine(chain)
        self._warm_up(self.engine)
        self.chunk = self.engine.chunk_samples if self.engine else max(blocksize, 256)
        self.chunk_in = np.zeros((channels, self.chunk), dtype=np.float32)
        # The outbox holds one chunk, the worker's headroom and a callback block when a chunk's last sample
        # arrives: the headroom is the time the worker has for it.  The dream engine takes whole chunks, so its
        # own (chunk - 1)-sample wait is not added again.
        self.headroom = self.measure_headroom() if headroom is None else headroom
        self.prefill = self.chunk + self.headroom + blocksize
        self.latency = self._latency(chain, self.engine)
        # Two seconds of input, at least: the callback keeps filling the rings while Python (the worker among its
        # threads) is held up, e.g. by a C extension that keeps the interpreter lock for a second.
        capacity = max(4 * (self.chunk + MAX_BLOCK), 2 * sample_rate)
        self.inbox, self.outbox = RingBuffer(channels, capacity), RingBuffer(channels, capacity)
        self.dry = RingBuffer(channels, self.latency + capacity)
        # Input before the current chunk, enough for a new chain's model context and STFT overlap.
        history = 0 if self.engine is None else self.engine.context_frames * self.engine.stft.hop + self.engine.stft.pad
        self.history = np.zeros((channels, -(-history // self.chunk) * self.chunk + self.chunk), dtype=np.float32)
        self.fade_in = (0.5 - 0.5 * np.cos(np.pi * (np.arange(self.chunk) + 0.5) / self.chunk)).astype(np.float32)
        self.stats = LiveStats()
        # What the compiled callback reads its buffers from (dreamfx.live.native_audio), and all it touches.
        self.layout = callback_layout(channels, self.inbox, self.outbox, self.dry, self.stats.counters)
        self.callback_memory = [self.layout, self.stats.counters] + [
            array for ring in (self.inbox, self.outbox, self.dry) for array in (ring.data, ring.counters)]
        self.switchable: dict[str, PresetSwitch] = {}  # program presets, built; the worker switches among them
        self.unswitchable: dict[str, str] = {}         # program presets that cannot be switched to, and why
        for name in dict.fromkeys(programs) if chain_factory is not None else ():
            self._build(name, chain_factory)
        self.incoming: collections.deque[PresetSwitch] = collections.deque()  # program change -> next chunk
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self.worker_error: BaseException | None = None
        self.reset()

    def reset(self) -> None:
        """Silence every buffer and the chain (only while stopped)."""
        self.inbox.clear()
        self.outbox.clear()
        self.dry.clear()
        self.outbox.write(np.zeros((self.channels, self.prefill), dtype=np.float32))
        self.dry.write(np.zeros((self.channels, self.latency), dtype=np.float32))
        self.stats.counters[OWED] = 0
        self.history[:] = 0
        self.chain.reset()
        if self.engine is not None:
            self.chain.take_whole_chunks(self.sample_rate, self.channels)

    def _engine(self, chain: Chain) -> DreamEngine | None:
        """The engine of ``chain``'s first dream at the stream's rate and channels (None: no dream)."""
        dreams = chain.dream_effects
        return dreams[0].engine(self.sample_rate, self.channels) if dreams else None

    def _warm_up(self, engine: DreamEngine | None) -> None:
        """Build the dream-step graphs ``engine`` can need (no export or trace may happen on the worker while
        streaming): its objective's, and with MIDI every layer's and the classes'; and the canvas's filter, which
        a parameter change may turn on while streaming (its first design imports scipy.signal: a second)."""
        if engine is not None:
            engine.backend.warm_up(engine.settings.objective, every_layer=self.control is not None)
            slope_kernel(self.sample_rate, engine.settings.canvas_slope)

    def _latency(self, chain: Chain, engine: DreamEngine | None) -> int:
        """Samples from input to output with ``chain`` (whose first dream runs on ``engine``): the chain's latency
        less the engine's chunk wait (the worker feeds whole chunks), plus what the outbox is primed with."""
        return chain.latency_samples(self.sample_rate) - (engine.chunk_wait if engine else 0) + self.prefill

    def measure_headroom(self, chunks: int = 8) -> int:
        """Frames the worker needs between a chunk's arrival and its output: the slowest of ``chunks`` chunks of
        noise run through the chain at full intensity and mix (after two to warm up), divided by
        ``load_target``; at most one chunk.  Leaves the chain reset."""
        noise = np.random.default_rng(0).normal(0, 0.05, (self.channels, (chunks + 2) * self.chunk))
        noise = noise.astype(np.float32)
        saved = None
        if self.engine is not None:
            settings = self.engine.settings
            saved, settings.intensity, settings.mix = (settings.intensity, settings.mix), 1.0, 1.0
            self.chain.reset()
            self.chain.take_whole_chunks(self.sample_rate, self.channels)
        times = []
        try:
            for i in range(chunks + 2):
                started = time.perf_counter()
                self.chain(noise[:, i * self.chunk:(i + 1) * self.chunk], self.sample_rate, reset=False)
                times.append(time.perf_counter() - started)
        finally:
            if saved is not None:
                self.engine.settings.intensity, self.engine.settings.mix = saved
            self.chain.reset()
        slowest = max(times[2:])
        return min(self.chunk, int(np.ceil(slowest / self.load_target * self.sample_rate)))

    # --- audio thread ------------------------------------------------------------------------
    @property
    def owed(self) -> int:
        """Frames of the outbox the callback replaced with dry (skipped when the worker catches up)."""
        return int(self.stats.counters[OWED])

    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info, status) -> None:
        """The callback as Python (sounddevice's signature; indata/outdata (frames, channels) float32): the
        compiled callback's own logic (:func:`dreamfx.live.native_audio.exchange`), for tests and
        ``dreamfx.live.stream.run_live(native=False)``."""
        flags = 0 if not status else sum(bit for bit, flag in ((1, status.input_underflow), (2, status.input_overflow),
                                                                (4, status.output_underflow),
                                                                (8, status.output_overflow)) if flag)
        exchange(indata, outdata, flags, self.inbox.data, self.inbox.counters, self.outbox.data,
                 self.outbox.counters, self.dry.data, self.dry.counters, self.stats.counters)

    # --- worker thread -----------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="dreamfx-worker", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=5)
            self._worker = None

    def _run(self) -> None:
        self.stats.worker_scheduling = real_time_priority(WORKER_PRIORITY) if self.realtime else "normal priority"
        try:
            while not self._stop.is_set():
                if self.inbox.size < self.chunk:
                    time.sleep(0.0005)
                    continue
                self.process_chunk()
        except BaseException as exc:  # reported by the caller; the callback keeps playing dry
            self.worker_error = exc

    def process_chunk(self) -> None:
        """Take one chunk from the inbox, run the chain on it, put the result in the outbox."""
        started = time.perf_counter()
        self.inbox.read_into(self.chunk_in)
        if not np.isfinite(self.chunk_in).all():  # never from a sound card, but never passed on either
            np.nan_to_num(self.chunk_in, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if self.control is not None:
            self.control.apply_pending(self.stats.chunks * self.chunk)
        ahead = (self.outbox.size - self.owed) / self.sample_rate  # seconds until the output runs dry
        deadline = started + self.load_target * ahead
        switch = self.incoming.popleft() if self.incoming else None
        if switch is not None:
            self._prime(switch)
            deadline = started + 0.5 * (deadline - started)  # the old chain's share; the new one gets the rest
        out = self._run_chain(self.chain, self.engine, deadline)
        if switch is not None:
            new = self._run_chain(switch.chain, switch.engine, started + self.load_target * ahead)
            out += self.fade_in * (new - out)
            self._adopt(switch)
        self.history[:, :-self.chunk] = self.history[:, self.chunk:]
        self.history[:, -self.chunk:] = self.chunk_in
        # After a long stall the worker catches up faster than the callback skips what it filled dry: wait for
        # room (the callback frees it every block) instead of overflowing the outbox.
        while self.outbox.free < out.shape[1]:
            if self._stop.is_set():
                return
            time.sleep(0.0005)
        self.outbox.write(out)
        stats = self.stats
        stats.chunks += 1
        stats.in_peak, stats.out_peak = float(np.abs(self.chunk_in).max()), float(np.abs(out).max())
        load = (time.perf_counter() - started) * self.sample_rate / self.chunk
        stats.worker_load = load if stats.chunks == 1 else 0.9 * stats.worker_load + 0.1 * load
        stats.peak_load, stats.load_sum = max(stats.peak_load, load), stats.load_sum + load
        if self.engine is not None:
            stats.iterations[self.engine.stats.last_iterations] += 1

    def _run_chain(self, chain: Chain, engine: DreamEngine | None, deadline: float) -> np.ndarray:
        """chain(chunk) under ``deadline``; never NaN (a native plugin misbehaving is zeroed)."""
        if engine is not None:
            engine.deadline = deadline
        out = chain(self.chunk_in, self.sample_rate, reset=False)
        return out if np.isfinite(out).all() else np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)

    # --- preset switching --------------------------------------------------------------------
    def program_change(self, program: int) -> None:
        """MIDI program change (called on the worker): switch to ``programs[program]``."""
        if not 0 <= program < len(self.programs):
            self.notice = f"program {program}: no preset (0..{len(self.programs) - 1})"
            return
        self.switch_to(self.programs[program])

    def switch_to(self, name: str) -> None:
        """Crossfade to program preset ``name`` (built before the stream started) on the next chunk
        (called on the worker, or while stopped)."""
        switch = self.switchable.get(name)
        if name in self.unswitchable:
            self.notice = f"preset {name!r} not loaded: {self.unswitchable[name]}"
        elif switch is None:
            self.notice = f"preset {name!r} is not among the programs: {', '.join(self.programs) or 'none'}"
        elif switch.chain is self.chain or any(s.chain is switch.chain for s in self.incoming):
            self.notice = f"already on {name}"
        else:
            self.incoming.append(switch)

    def _build(self, name: str, chain_factory: ChainFactory) -> None:
        """Build program preset ``name`` and, when it can be switched to, its dream-step graphs (before
        streaming), or note why not."""
        try:
            chain, midi_map = chain_factory(name)
            chain.check_rate(self.sample_rate)
            engine = self._engine(chain)
            chunk = engine.chunk_samples if engine else self.chunk
            latency = self._latency(chain, engine)
            if chunk != self.chunk or latency != self.latency:
                raise DreamfxError(f"its chunk ({chunk} samples) and latency ({latency}) differ from the running "
                                   f"preset's ({self.chunk}, {self.latency}); start dreamfx live with it instead")
            self._warm_up(engine)
            self.switchable[name] = PresetSwitch(name, chain, engine, midi_map)
        except Exception as exc:  # reported when the program is chosen; the running chain plays on
            self.unswitchable[name] = str(exc) if isinstance(exc, DreamfxError) else f"{type(exc).__name__}: {exc}"

    def _prime(self, switch: PresetSwitch) -> None:
        """Reset the new chain and run the input history through it without dreaming, so its STFT overlap,
        model context and plugin tails match the stream."""
        switch.chain.reset()
        if switch.engine is not None:
            switch.chain.take_whole_chunks(self.sample_rate, self.channels)
            switch.engine.deadline = 0.0  # already passed: no iterations
        for start in range(0, self.history.shape[1], self.chunk):
            switch.chain(self.history[:, start:start + self.chunk], self.sample_rate, reset=False)
        if switch.engine is not None:
            switch.engine.stats = EngineStats()

    def _adopt(self, switch: PresetSwitch) -> None:
        self.chain, self.engine, self.preset_name = switch.chain, switch.engine, switch.name
        if self.control is not None and switch.chain.dream_effects:
            self.control.retarget(switch.chain.dream_effects[0], switch.midi_map, switch.chain)
        self.stats.switches += 1
        self.notice = f"switched to {switch.name}"


def headroom_frames(preset: Preset, sample_rate: int, override_ms: float | None = None) -> int | None:
    """The worker's headroom for :class:`LiveProcessor`, in frames at ``sample_rate``: ``override_ms`` (the
    command line's), else the preset's ``live.headroom_ms``, else None (measured when the processor is built)."""
    ms = preset.live.get("headroom_ms") if override_ms is None else override_ms
    return None if ms is None else round(ms * sample_rate / 1000)


def real_time_priority(priority: int) -> str:
    """Schedule the calling thread as real-time (SCHED_FIFO ``priority``), else at nice -10, else leave it
    (Linux; it needs root, CAP_SYS_NICE or an rtprio limit such as the 'audio' group's).  Says which."""
    thread = threading.get_native_id()
    try:
        os.sched_setscheduler(thread, os.SCHED_FIFO, os.sched_param(priority))
        return f"SCHED_FIFO {priority}"
    except (OSError, AttributeError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, thread, -10)
        return "nice -10"
    except (OSError, AttributeError):
        return "normal priority (no permission for real-time scheduling; add yourself to the 'audio' group)"
