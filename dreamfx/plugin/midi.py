"""Playing the dream with MIDI: messages applied to a DreamEffect (live or from a file).

Default map: CC1 (mod wheel) -> intensity, CC2 -> mix, CC3 -> iterations,
CC4 -> step, CC5 -> layer; note-on -> dream toward class ``note % n_classes``
with intensity velocity / 127; note-off -> back to the objective and intensity
held before the note.

The controller map is the preset's (:class:`dreamfx.plugin.presets.MidiMap`).  Live, messages come from a
port (:mod:`dreamfx.live.midi_ports`) and the worker applies them before each chunk
(:meth:`MidiControl.apply_pending`), so the audio callback never sees MIDI.  ``learn(parameter)`` binds the next
controller moved to that parameter (or to a stage's control, ``chain[2].drive``).  Intensity and mix changes are ramped
frame by frame across the chunk by the engine (no zipper noise).

A performance can be recorded (each message stamped with the start of the chunk
it was applied to) and replayed offline with :class:`Automation`, which applies
the messages of a MIDI file at the same chunks: the same parameter trajectory.
"""

from __future__ import annotations

import collections
from typing import Callable

from dreamfx.plugin.effect import DreamEffect
from dreamfx.plugin.presets import (MIDI_PARAMETERS, STAGE_CONTROL, ControlRange, MidiMap, control_range,
                                    is_midi_parameter)
from dreamfx.errors import DreamfxError
from dreamfx.files import atomic_path

CC, NOTE_ON, NOTE_OFF, PROGRAM = 0xB0, 0x90, 0x80, 0xC0
TICKS_PER_BEAT = 960
TICKS_PER_SECOND = 2 * TICKS_PER_BEAT  # at mido's default tempo, 120 bpm


class MidiControl:
    """Applies MIDI messages (3-byte lists) to a DreamEffect, on the thread that calls :meth:`apply_pending`.

    ``on_program``: called with the program number of a program change (preset switching); ``chain``: the chain
    whose stages' controls the map may name (``chain[2].drive``).  ``sample_rate``: the stream's, once known (live,
    a MIDI file's render); a controller then sweeps a stage's control no further than the chain can run at it
    (a low-pass cutoff stops below half the rate, where pedalboard's filter would blow up).
    """

    def __init__(self, effect: DreamEffect, midi_map: MidiMap | None = None,
                 on_program: Callable[[int], None] | None = None, chain: list | None = None):
        self.effect, self.map, self.on_program, self.chain = effect, midi_map or MidiMap(), on_program, chain
        self.pending: collections.deque = collections.deque()  # append/popleft are atomic: any thread -> worker
        self.source: Callable[[], tuple | None] | None = None  # rtmidi's get_message: fetched before each chunk
        self.held: tuple | None = None  # (objective settings, intensity) before the sounding note
        self.received = 0
        self.recorded: list[tuple[int, list[int]]] = []  # (stream sample, message) when recording
        self.recording = False
        self.learning: str | None = None  # the parameter the next controller moved is bound to
        self.learned: list[tuple[int, str]] = []  # (controller, parameter) bound by learning
        self.sample_rate: float | None = None

    def learn(self, parameter: str) -> None:
        """Bind the next controller moved to ``parameter``: a dream parameter (MIDI_PARAMETERS) or a stage's
        control in this chain, ``chain[N].symbol``."""
        if not is_midi_parameter(parameter):
            raise DreamfxError(f"cannot learn {parameter!r}: use one of {', '.join(MIDI_PARAMETERS)} or a stage's "
                               "control, chain[N].symbol")
        if STAGE_CONTROL.fullmatch(parameter) is not None:
            try:
                self._stage_control(parameter)
            except DreamfxError as exc:
                raise DreamfxError(f"cannot learn {parameter!r}: {exc}") from None
        self.learning = parameter

    def retarget(self, effect: DreamEffect, midi_map: MidiMap | None, chain: list | None = None) -> None:
        """Control another effect and chain (a preset switch); a sounding note is forgotten, a learned binding
        kept (one to a stage's control only while the chain has that control)."""
        self.effect, self.chain, self.held = effect, chain, None
        self.map = midi_map or MidiMap()
        for number, name in self.learned:
            if STAGE_CONTROL.fullmatch(name) is not None:
                try:
                    self._stage_control(name)
                except DreamfxError:
                    continue
            self.map.bind(number, name)

    def _stage_control(self, name: str) -> tuple[object, str, ControlRange]:
        """(plugin, control symbol, what a controller sweeps it over) of ``name`` = ``chain[N].symbol`` in this
        chain; one line when the chain has no such control."""
        control = STAGE_CONTROL.fullmatch(name)
        index, symbol = int(control[1]), control[2]
        plugin = self.chain[index] if self.chain is not None and index < len(self.chain) else None
        return plugin, symbol, control_range(plugin, symbol)

    def queue(self, message: list[int]) -> None:
        """Thread-safe, non-blocking: keep a message for the next chunk."""
        self.pending.append(message)

    def apply_pending(self, sample: int = 0) -> None:
        """Apply the queued messages (and those waiting at :attr:`source`) at stream position ``sample``
        (recorded with that time)."""
        while self.source is not None and (event := self.source()) is not None:
            self.pending.append(event[0])
        while self.pending:
            message = self.pending.popleft()
            if self.recording:
                self.recorded.append((sample, list(message)))
            self.apply(message)

    def save_recording(self, path, sample_rate: int) -> None:
        """Write the recorded messages to a MIDI file (120 bpm, 960 ticks per beat), atomically."""
        import mido
        track, last = mido.MidiTrack(), 0
        for sample, message in self.recorded:
            tick = round(sample / sample_rate * TICKS_PER_SECOND)
            track.append(mido.Message.from_bytes(message, time=tick - last))
            last = tick
        song = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT, tracks=[track])
        with atomic_path(path) as tmp:
            song.save(str(tmp))

    def apply(self, message: list[int]) -> None:
        """Apply one message now."""
        if len(message) < 2:
            return
        self.received += 1
        kind, data = message[0] & 0xF0, message[1:]
        if kind == CC and self.learning is not None:
            self.map.bind(data[0], self.learning)
            self.learned.append((data[0], self.learning))
            self.learning = None
        if kind == CC and data[0] in self.map.cc:
            self._set_parameter(self.map.cc[data[0]], data[1] if len(data) > 1 else 0)
        elif kind == NOTE_ON and self.map.notes and len(data) > 1 and data[1] > 0:
            self._note_on(data[0], data[1])
        elif kind in (NOTE_OFF, NOTE_ON) and self.map.notes:
            self._note_off()
        elif kind == PROGRAM and self.on_program is not None:
            self.on_program(data[0])

    def _set_parameter(self, name: str, value: int) -> None:
        if STAGE_CONTROL.fullmatch(name) is not None:
            plugin, symbol, sweep = self._stage_control(name)
            allowed = next((v for v in range(value, -1, -1) if self._runs_at_rate(plugin, symbol, sweep.at(v))), value)
            setattr(plugin, symbol, sweep.at(allowed))
            return
        effect = self.effect
        if name == "layer":
            layers = effect.layer_names
            effect.layer = layers[min(value * len(layers) // 128, len(layers) - 1)]
            return
        low, high = MIDI_PARAMETERS[name]
        scaled = low + (high - low) * value / 127
        setattr(effect, name, round(scaled) if isinstance(low, int) else scaled)

    def _runs_at_rate(self, plugin, symbol: str, value: float) -> bool:
        """Whether the chain can run at :attr:`sample_rate` (True while it is unknown) with ``plugin``'s control
        ``symbol`` set to ``value`` (left set)."""
        setattr(plugin, symbol, value)
        if self.sample_rate is None:
            return True
        try:
            self.chain.check_rate(self.sample_rate)
        except DreamfxError:
            return False
        return True

    def _note_on(self, note: int, velocity: int) -> None:
        effect = self.effect
        if self.held is None:
            self.held = (effect.settings.objective, effect.intensity)
        classes = effect.class_names
        effect.target = classes[note % len(classes)]
        effect.intensity = velocity / 127

    def _note_off(self) -> None:
        if self.held is not None:
            objective, intensity = self.held
            self.effect.settings.objective = objective
            self.effect.intensity = intensity
            self.held = None



class Automation:
    """A MIDI file's messages applied to a DreamEffect at chunk resolution, offline.

    Chunk k (input samples k*C .. (k+1)*C) gets the messages timed before
    (k + 1/2) * C, so a recording (stamped at chunk starts, rounded to MIDI
    ticks) lands on the chunk it was played on.
    """

    def __init__(self, path):
        import mido
        try:
            song = mido.MidiFile(str(path))
        except (OSError, EOFError, ValueError, KeyError) as exc:
            raise DreamfxError(f"cannot read MIDI file {path} ({exc}): give a standard MIDI file") from None
        self.events, seconds = [], 0.0
        for message in song:  # merged tracks, times in seconds (tempo map applied)
            seconds += message.time
            if not message.is_meta and message.type != "sysex":
                self.events.append((seconds, message.bytes()))

    def attach(self, control: MidiControl, sample_rate: int, channels: int) -> None:
        """Play the file through ``control`` on its effect's engine for this rate and channel count."""
        engine = control.effect.engine(sample_rate, channels)
        control.sample_rate = sample_rate
        chunk, upcoming = engine.chunk_samples, collections.deque(self.events)

        def before_chunk(index: int) -> None:
            limit = (index + 0.5) * chunk / sample_rate
            while upcoming and upcoming[0][0] < limit:
                control.queue(upcoming.popleft()[1])
            control.apply_pending(index * chunk)
        engine.before_chunk.append(before_chunk)
