"""Playing the dream with MIDI: a controller map, and live input through python-rtmidi.

Default map: CC1 (mod wheel) -> intensity, CC2 -> mix, CC3 -> iterations,
CC4 -> step, CC5 -> layer; note-on -> dream toward class ``note % n_classes``
with intensity velocity / 127; note-off -> back to the objective and intensity
held before the note.

Messages wait in rtmidi's own queue (no Python callback: rtmidi would call it
on JACK's process thread, which would then wait for the interpreter lock and
hold up the audio cycle); the live worker fetches and applies them before each
chunk (:meth:`MidiControl.apply_pending`), so the audio callback never sees MIDI.  ``learn(parameter)`` binds the next
controller moved to that parameter.  Intensity and mix changes are ramped
frame by frame across the chunk by the engine (no zipper noise).

A performance can be recorded (each message stamped with the start of the chunk
it was applied to) and replayed offline with :class:`Automation`, which applies
the messages of a MIDI file at the same chunks: the same parameter trajectory.
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from dreamfx.effect import DreamEffect
from dreamfx.errors import DreamfxError
from dreamfx.files import atomic_path

CC, NOTE_ON, NOTE_OFF, PROGRAM = 0xB0, 0x90, 0x80, 0xC0
TICKS_PER_BEAT = 960
TICKS_PER_SECOND = 2 * TICKS_PER_BEAT  # at mido's default tempo, 120 bpm
PARAMETERS = {  # name -> (low, high) of the 0..127 controller range
    "intensity": (0.0, 1.0), "mix": (0.0, 1.0), "iterations": (0, 32), "step": (0.0, 0.5), "layer": (0, 1),
}


@dataclass
class MidiMap:
    """Which controller moves which parameter, and which preset each program change selects."""

    cc: dict[int, str] = field(default_factory=lambda: {1: "intensity", 2: "mix", 3: "iterations", 4: "step",
                                                         5: "layer"})
    notes: bool = True  # note-on/off choose the target class
    programs: tuple[str, ...] = ()  # program change n -> preset programs[n]; empty: the shipped presets, sorted

    def bind(self, number: int, name: str) -> None:
        """Make controller ``number`` move ``name``, and no other controller move it."""
        self.cc = {n: p for n, p in self.cc.items() if p != name}
        self.cc[number] = name
        self.__post_init__()

    def __post_init__(self):
        for number, name in self.cc.items():
            if not (isinstance(number, int) and 0 <= number <= 127):
                raise DreamfxError(f"MIDI CC number {number!r} is outside 0..127")
            if name not in PARAMETERS:
                raise DreamfxError(f"MIDI CC {number} maps to unknown parameter {name!r}; use one of "
                                   f"{', '.join(PARAMETERS)}")


class MidiControl:
    """Applies MIDI messages (3-byte lists) to a DreamEffect, on the thread that calls :meth:`apply_pending`.

    ``on_program``: called with the program number of a program change (preset switching).
    """

    def __init__(self, effect: DreamEffect, midi_map: MidiMap | None = None,
                 on_program: Callable[[int], None] | None = None):
        self.effect, self.map, self.on_program = effect, midi_map or MidiMap(), on_program
        self.pending: collections.deque = collections.deque()  # append/popleft are atomic: any thread -> worker
        self.source: Callable[[], tuple | None] | None = None  # rtmidi's get_message: fetched before each chunk
        self.held: tuple | None = None  # (objective settings, intensity) before the sounding note
        self.received = 0
        self.recorded: list[tuple[int, list[int]]] = []  # (stream sample, message) when recording
        self.recording = False
        self.learning: str | None = None  # the parameter the next controller moved is bound to
        self.learned: list[tuple[int, str]] = []  # (controller, parameter) bound by learning

    def learn(self, parameter: str) -> None:
        """Bind the next controller moved to ``parameter`` (one of PARAMETERS)."""
        if parameter not in PARAMETERS:
            raise DreamfxError(f"cannot learn {parameter!r}: use one of {', '.join(PARAMETERS)}")
        self.learning = parameter

    def retarget(self, effect: DreamEffect, midi_map: MidiMap | None) -> None:
        """Control another effect (a preset switch); a sounding note is forgotten, a learned binding kept."""
        self.effect, self.held = effect, None
        self.map = midi_map or MidiMap()
        for number, name in self.learned:
            self.map.bind(number, name)

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
        effect = self.effect
        if name == "layer":
            layers = effect.layer_names
            effect.layer = layers[min(value * len(layers) // 128, len(layers) - 1)]
            return
        low, high = PARAMETERS[name]
        scaled = low + (high - low) * value / 127
        setattr(effect, name, round(scaled) if isinstance(low, int) else scaled)

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


def midi_systems():
    """Yield (rtmidi module, API, MidiIn) for each running MIDI system: JACK MIDI first, then ALSA."""
    try:
        import rtmidi
    except ImportError:
        raise DreamfxError("MIDI needs python-rtmidi: pip install 'dreamfx[live]'") from None
    os.environ.setdefault("JACK_NO_START_SERVER", "1")  # look for a server, never start one
    for api in (rtmidi.API_UNIX_JACK, rtmidi.API_LINUX_ALSA):
        if api in rtmidi.get_compiled_api():
            try:
                yield rtmidi, api, rtmidi.MidiIn(api, name="dreamfx")
            except rtmidi.RtMidiError:
                continue


def open_midi_input(control: MidiControl, port: str | int | None = None, virtual: str | None = None):
    """Open a MIDI input feeding ``control``: an existing port (name part or number) or a new virtual port.

    Uses the first running MIDI system (JACK, then ALSA).  Returns the rtmidi.MidiIn (close it with
    :func:`close_midi_port`).
    """
    _, _, midi_in = next(midi_systems(), (None, None, None))
    if midi_in is None:
        raise DreamfxError("no MIDI system is running: start a JACK server (jackd) or load the ALSA sequencer")
    midi_in.ignore_types(sysex=True, timing=True, active_sense=True)
    if virtual is not None:
        midi_in.open_virtual_port(virtual)
    else:
        midi_in.open_port(find_port(midi_in.get_ports(), port))
    control.source = midi_in.get_message
    return midi_in


SETTLE_S = 0.2  # how long JACK's notifications of a closed port are given before its client goes


def close_midi_port(midi) -> None:
    """Close an rtmidi input or output: its port, then (SETTLE_S later) its JACK or ALSA client.

    RtMidi 5 unregisters a JACK port and closes the client at once; jack2 then cancels the client's
    notification and process threads asynchronously (pthread_cancel), possibly while the notification thread
    still handles the unregistration it was just sent.  That crashed the test process once in CI (a segfault
    in a thread without Python, in ``delete()``).  Closing the port first and waiting until JACK's
    notifications settle closes the client while its threads wait, where cancelling them is safe.
    """
    midi.close_port()
    time.sleep(SETTLE_S)
    midi.delete()


def find_port(ports: list[str], wanted: str | int | None) -> int:
    """Index of the port named (in part) or numbered ``wanted``; the first port when None."""
    listing = "; ".join(f"{i}: {p}" for i, p in enumerate(ports)) or "none"
    if isinstance(wanted, str) and wanted.isdigit():
        wanted = int(wanted)
    if wanted is None and ports:
        return 0
    if isinstance(wanted, int) and 0 <= wanted < len(ports):
        return wanted
    if isinstance(wanted, str):
        matches = [i for i, p in enumerate(ports) if wanted.lower() in p.lower()]
        if matches:
            return matches[0]
    raise DreamfxError(f"MIDI input port {wanted!r} not found; available: {listing} "
                       "(or use --midi-virtual NAME to create one)")


def port_listing() -> str:
    """One line per MIDI input port on JACK and ALSA, or why there are none."""
    try:
        lines = [f"{i}: {p} ({rtmidi.get_api_display_name(api)})" for rtmidi, api, midi_in in midi_systems()
                 for i, p in enumerate(midi_in.get_ports())]
    except DreamfxError as exc:
        return f"({exc})"
    return "\n".join(lines) or "(none: no MIDI system running, or no ports)"


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
        chunk, upcoming = engine.chunk_samples, collections.deque(self.events)

        def before_chunk(index: int) -> None:
            limit = (index + 0.5) * chunk / sample_rate
            while upcoming and upcoming[0][0] < limit:
                control.queue(upcoming.popleft()[1])
            control.apply_pending(index * chunk)
        engine.before_chunk.append(before_chunk)
