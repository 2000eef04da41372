"""Genre-typical MIDI arrangements, generated from a seed.

Each genre is a :class:`GenreStyle`: tempo range, swing, drum kit and pattern,
bass style, comping style, chord progressions, scale and instrument palettes
(General MIDI program numbers, 0-based).  :func:`compose` turns a style and a
random generator into a multi-track :class:`mido.MidiFile` that FluidSynth
renders with a General MIDI soundfont.

Patterns are written on a grid of 16th notes (``steps`` per bar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import mido
import numpy as np

TICKS_PER_BEAT = 480
STEP_TICKS = TICKS_PER_BEAT // 4  # one 16th note
DRUM_CHANNEL = 9

# General MIDI percussion keys.
KICK, SIDE_STICK, SNARE, CLAP, E_SNARE = 36, 37, 38, 39, 40
CLOSED_HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE, RIDE_BELL = 42, 44, 46, 49, 51, 53
LOW_TOM, MID_TOM, HIGH_TOM, TAMBOURINE, SHAKER = 45, 47, 50, 54, 82

CHORDS = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "power": (0, 7, 12),
    "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "dom7": (0, 4, 7, 10),
    "min9": (0, 3, 7, 10, 14), "maj9": (0, 4, 7, 11, 14), "sus4": (0, 5, 7),
}
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10), "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10), "blues": (0, 3, 5, 6, 7, 10),
    "pentatonic": (0, 2, 4, 7, 9), "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}


@dataclass(frozen=True)
class DrumPattern:
    """One bar of drums: ``{gm_key: steps}``, plus per-key velocity."""

    hits: dict[int, tuple[int, ...]]
    velocity: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class GenreStyle:
    """Everything that makes a genre recognisable in this synthetic set."""

    name: str
    tempo: tuple[float, float]             # BPM range
    swing: float                           # 0 = straight, 0.33 = triplet feel
    scale: str
    progressions: tuple[tuple[tuple[int, str], ...], ...]  # (root semitone, chord)
    drum_kits: tuple[int, ...]             # GM drum bank programs; () = no drums
    drum_patterns: tuple[DrumPattern, ...]
    bass_programs: tuple[int, ...]
    bass_style: str                        # see _bass_notes
    comp_programs: tuple[int, ...]
    comp_style: str                        # see _comp_notes
    lead_programs: tuple[int, ...]
    lead_density: float                    # probability of a note per 8th
    lead_register: tuple[int, int]         # MIDI pitch range
    steps: int = 16                        # 16ths per bar
    humanize_ticks: int = 12
    velocity: tuple[int, int] = (70, 110)


def _p(**hits: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    names = {"kick": KICK, "snare": SNARE, "side": SIDE_STICK, "clap": CLAP,
             "esnare": E_SNARE, "hat": CLOSED_HAT, "pedal": PEDAL_HAT,
             "open": OPEN_HAT, "crash": CRASH, "ride": RIDE, "bell": RIDE_BELL,
             "tamb": TAMBOURINE, "shaker": SHAKER, "tom": LOW_TOM}
    return {names[k]: v for k, v in hits.items()}


EIGHTHS = tuple(range(0, 16, 2))
SIXTEENTHS = tuple(range(16))
OFFBEAT_8THS = tuple(range(2, 16, 4))

STYLES: tuple[GenreStyle, ...] = (
    GenreStyle(
        "rock", (100, 140), 0.0, "mixolydian",
        (((0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")),
         ((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")),
         ((9, "min"), (5, "maj"), (0, "maj"), (7, "maj"))),
        (0, 16),
        (DrumPattern(_p(kick=(0, 8, 10), snare=(4, 12), hat=EIGHTHS)),
         DrumPattern(_p(kick=(0, 6, 8), snare=(4, 12), hat=EIGHTHS, crash=(0,))),
         DrumPattern(_p(kick=(0, 3, 8, 11), snare=(4, 12), open=EIGHTHS))),
        (33, 34), "root_eighths", (29, 27), "power_eighths", (29, 30), 0.45, (52, 76),
    ),
    GenreStyle(
        "metal", (150, 200), 0.0, "phrygian",
        (((0, "power"), (1, "power"), (0, "power"), (3, "power")),
         ((0, "power"), (5, "power"), (3, "power"), (1, "power")),
         ((0, "power"), (0, "power"), (6, "power"), (5, "power"))),
        (16, 0),
        (DrumPattern(_p(kick=SIXTEENTHS, snare=(4, 12), crash=(0, 8), hat=EIGHTHS)),
         DrumPattern(_p(kick=SIXTEENTHS, snare=(2, 6, 10, 14), ride=EIGHTHS)),
         DrumPattern(_p(kick=(0, 1, 2, 3, 8, 9, 10, 11), snare=(4, 12), crash=EIGHTHS))),
        (34, 33), "root_sixteenths", (30,), "palm_mute", (30, 29), 0.55, (50, 74),
        velocity=(95, 127),
    ),
    GenreStyle(
        "jazz", (110, 180), 0.33, "dorian",
        (((2, "min7"), (7, "dom7"), (0, "maj7"), (0, "maj7")),
         ((0, "maj7"), (9, "min7"), (2, "min7"), (7, "dom7")),
         ((4, "min7"), (9, "dom7"), (2, "min7"), (7, "dom7"))),
        (32, 40),
        (DrumPattern(_p(ride=(0, 4, 6, 8, 12, 14), pedal=(4, 12), kick=(0,)),
                     {RIDE: 70, PEDAL_HAT: 55, KICK: 45}),
         DrumPattern(_p(ride=(0, 4, 6, 8, 12, 14), pedal=(4, 12), side=(14,)),
                     {RIDE: 65, PEDAL_HAT: 50, SIDE_STICK: 50})),
        (32,), "walking", (0, 26, 4), "jazz_comp", (65, 66, 56), 0.6, (58, 82),
        velocity=(55, 95),
    ),
    GenreStyle(
        "classical", (60, 110), 0.0, "major",
        (((0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")),
         ((0, "maj"), (9, "min"), (2, "min"), (7, "dom7")),
         ((9, "min"), (2, "min"), (7, "maj"), (0, "maj")),
         ((0, "maj"), (7, "maj"), (9, "min"), (4, "min"))),
        (), (),
        (42, 32), "sustained", (48, 0, 46, 49), "alberti", (40, 73, 68, 71), 0.5, (64, 88),
        humanize_ticks=20, velocity=(45, 95),
    ),
    GenreStyle(
        "electronic", (120, 135), 0.0, "minor",
        (((0, "min"), (8, "maj"), (3, "maj"), (10, "maj")),
         ((0, "min7"), (5, "min7"), (0, "min7"), (10, "maj")),
         ((0, "min"), (0, "min"), (8, "maj"), (7, "min"))),
        (25, 24),
        (DrumPattern(_p(kick=(0, 4, 8, 12), clap=(4, 12), open=OFFBEAT_8THS, hat=SIXTEENTHS),
                     {CLOSED_HAT: 60}),
         DrumPattern(_p(kick=(0, 4, 8, 12), clap=(4, 12), hat=EIGHTHS, shaker=SIXTEENTHS),
                     {SHAKER: 50})),
        (38, 39), "offbeat_synth", (89, 90, 88), "pad", (81, 80), 0.0, (60, 84),
        humanize_ticks=0, velocity=(90, 115),
    ),
    GenreStyle(
        "hiphop", (80, 98), 0.12, "minor",
        (((0, "min7"), (8, "maj7"), (5, "min7"), (7, "min7")),
         ((0, "min9"), (5, "min7"), (0, "min9"), (10, "maj7")),
         ((0, "min7"), (3, "maj7"), (8, "maj7"), (7, "dom7"))),
        (25, 0),
        (DrumPattern(_p(kick=(0, 7, 10), snare=(4, 12), hat=EIGHTHS)),
         DrumPattern(_p(kick=(0, 3, 10), snare=(4, 12), hat=SIXTEENTHS), {CLOSED_HAT: 55}),
         DrumPattern(_p(kick=(0, 6, 9), clap=(4, 12), hat=EIGHTHS))),
        (38, 33), "sparse_long", (4, 48), "lofi_chords", (4, 73), 0.2, (60, 80),
    ),
    GenreStyle(
        "reggae", (68, 88), 0.15, "major",
        (((0, "maj"), (5, "maj"), (0, "maj"), (7, "maj")),
         ((9, "min"), (7, "maj"), (9, "min"), (7, "maj")),
         ((0, "maj"), (9, "min"), (5, "maj"), (7, "maj"))),
        (0,),
        (DrumPattern(_p(kick=(8,), side=(8,), hat=EIGHTHS)),
         DrumPattern(_p(kick=(8,), snare=(8,), hat=SIXTEENTHS, open=(14,)), {CLOSED_HAT: 55})),
        (33, 32), "reggae_bass", (16, 27, 17), "skank", (16, 56), 0.25, (60, 79),
    ),
    GenreStyle(
        "country", (100, 130), 0.0, "major",
        (((0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")),
         ((0, "maj"), (0, "maj"), (5, "maj"), (7, "dom7")),
         ((0, "maj"), (7, "maj"), (5, "maj"), (0, "maj"))),
        (0, 40),
        (DrumPattern(_p(kick=(0, 8), snare=(4, 12), hat=EIGHTHS)),
         DrumPattern(_p(kick=(0, 8), side=(4, 12), tamb=EIGHTHS))),
        (33, 32), "root_fifth", (25, 24), "boom_chick", (110, 105, 22), 0.5, (62, 86),
    ),
)

GENRES: tuple[str, ...] = tuple(s.name for s in STYLES)


class _Track:
    """Notes on one channel, collected as absolute-tick events."""

    def __init__(self, channel: int, program: int, volume: int = 100):
        self.channel = channel
        self.events: list[tuple[int, int, mido.Message]] = [
            (0, 0, mido.Message("program_change", channel=channel, program=program)),
            (0, 0, mido.Message("control_change", channel=channel, control=7, value=volume)),
        ]

    def note(self, start: int, length: int, pitch: int, velocity: int) -> None:
        pitch = int(np.clip(pitch, 0, 127))
        velocity = int(np.clip(velocity, 1, 127))
        start = max(0, int(start))
        end = start + max(1, int(length))
        # Note-offs sort before note-ons at the same tick (second key 0 < 1).
        self.events.append((start, 1, mido.Message("note_on", channel=self.channel, note=pitch, velocity=velocity)))
        self.events.append((end, 0, mido.Message("note_off", channel=self.channel, note=pitch, velocity=0)))

    def to_midi_track(self) -> mido.MidiTrack:
        track, now = mido.MidiTrack(), 0
        for tick, _, msg in sorted(self.events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        return track


class _Grid:
    """Maps (bar, 16th step) to ticks with swing and humanisation."""

    def __init__(self, style: GenreStyle, rng: np.random.Generator):
        self.style, self.rng = style, rng

    def tick(self, bar: int, step: float, humanize: bool = True) -> int:
        t = (bar * self.style.steps + step) * STEP_TICKS
        if self.style.swing and int(step) % 4 == 2 and step == int(step):  # off-beat 8th
            t += self.style.swing * 2 * STEP_TICKS
        if humanize and self.style.humanize_ticks:
            t += self.rng.integers(-self.style.humanize_ticks, self.style.humanize_ticks + 1)
        return int(max(0, t))

    def velocity(self, accent: float = 0.0) -> int:
        lo, hi = self.style.velocity
        return int(self.rng.integers(lo, hi + 1) + accent)


def _chord_pitches(key: int, root: int, quality: str, base: int) -> list[int]:
    """Chord tones stacked above the octave that holds ``base``."""
    tonic = base + ((key + root - base) % 12)
    return [tonic + iv for iv in CHORDS[quality]]


def _drums(style, grid, rng, n_bars, track):
    pattern = style.drum_patterns[rng.integers(len(style.drum_patterns))]
    for bar in range(n_bars):
        fill = bar == n_bars - 1 and rng.random() < 0.5
        for key, steps in pattern.hits.items():
            for step in steps:
                if fill and step >= 12:
                    continue
                base_vel = pattern.velocity.get(key, grid.velocity())
                accent = 12 if step % 4 == 0 else 0
                track.note(grid.tick(bar, step), STEP_TICKS, key, base_vel + accent + rng.integers(-8, 9))
        if fill:
            for i, step in enumerate(range(12, 16)):
                track.note(grid.tick(bar, step), STEP_TICKS, (HIGH_TOM, MID_TOM, LOW_TOM, SNARE)[i], grid.velocity(10))


def _bass_notes(style, grid, rng, key, progression, n_bars, track):
    scale = SCALES[style.scale]
    for bar in range(n_bars):
        root, quality = progression[bar % len(progression)]
        r = _chord_pitches(key, root, quality, 36)[0]
        fifth = r + 7
        s = style.bass_style
        if s in ("root_eighths", "root_sixteenths"):
            step_len = 2 if s == "root_eighths" else 1
            for step in range(0, style.steps, step_len):
                pitch = r + (12 if (s == "root_eighths" and step == 14 and rng.random() < 0.5) else 0)
                track.note(grid.tick(bar, step), STEP_TICKS * step_len * 0.9, pitch, grid.velocity())
        elif s == "walking":
            tones = [r, r + CHORDS[quality][1], fifth, r + CHORDS[quality][-1] % 12]
            nxt = _chord_pitches(key, *progression[(bar + 1) % len(progression)], 36)[0]
            for beat in range(4):
                pitch = tones[beat] if beat < 3 else nxt + rng.choice([-1, 1])
                track.note(grid.tick(bar, beat * 4), STEP_TICKS * 3.6, pitch, grid.velocity())
        elif s == "sustained":
            track.note(grid.tick(bar, 0), STEP_TICKS * style.steps * 0.95, r, grid.velocity())
            track.note(grid.tick(bar, style.steps // 2), STEP_TICKS * style.steps * 0.45, fifth - 12, grid.velocity(-10))
        elif s == "offbeat_synth":
            for step in range(2, style.steps, 4):
                track.note(grid.tick(bar, step, humanize=False), STEP_TICKS * 1.6, r, grid.velocity())
            if rng.random() < 0.5:
                track.note(grid.tick(bar, 14, humanize=False), STEP_TICKS, r + 12, grid.velocity())
        elif s == "sparse_long":
            track.note(grid.tick(bar, 0), STEP_TICKS * 6, r, grid.velocity(10))
            track.note(grid.tick(bar, 10), STEP_TICKS * 4, r + rng.choice([0, 7, 10]), grid.velocity())
        elif s == "reggae_bass":
            line = [(0, r), (3, r + scale[2]), (6, fifth), (10, r + 12), (12, fifth), (14, r + scale[1])]
            for step, pitch in line:
                if rng.random() < 0.85:
                    track.note(grid.tick(bar, step), STEP_TICKS * 1.8, pitch, grid.velocity())
        elif s == "root_fifth":
            for beat, pitch in enumerate((r, fifth - 12, r, fifth - 12)):
                track.note(grid.tick(bar, beat * 4), STEP_TICKS * 3, pitch, grid.velocity())
        else:
            raise ValueError(f"unknown bass style {s!r}")


def _comp_notes(style, grid, rng, key, progression, n_bars, track):
    for bar in range(n_bars):
        root, quality = progression[bar % len(progression)]
        chord = _chord_pitches(key, root, quality, 52)
        s = style.comp_style
        if s == "power_eighths":
            power = _chord_pitches(key, root, "power", 40)
            for step in range(0, style.steps, 2):
                for p in power:
                    track.note(grid.tick(bar, step), STEP_TICKS * 1.8, p, grid.velocity())
        elif s == "palm_mute":
            power = _chord_pitches(key, root, "power", 40)
            for step in range(style.steps):
                if rng.random() < 0.8:
                    for p in power[:2]:
                        track.note(grid.tick(bar, step, humanize=False), STEP_TICKS * 0.6, p, grid.velocity())
        elif s == "jazz_comp":
            voicing = chord[1:] + [chord[0] + 12]  # rootless
            for step in sorted(rng.choice([0, 3, 6, 8, 10, 11, 14], size=3, replace=False)):
                for p in voicing:
                    track.note(grid.tick(bar, step), STEP_TICKS * 2, p, grid.velocity(-10))
        elif s == "alberti":
            order = [0, 2, 1, 2]
            for step in range(0, style.steps, 2):
                track.note(grid.tick(bar, step), STEP_TICKS * 2, chord[order[(step // 2) % 4]] - 12 + 12 * (step % 8 == 0),
                           grid.velocity(-15))
        elif s == "pad":
            for p in chord + [chord[0] + 12]:
                track.note(grid.tick(bar, 0, humanize=False), STEP_TICKS * style.steps, p, grid.velocity(-25))
        elif s == "lofi_chords":
            for p in chord:
                track.note(grid.tick(bar, 0), STEP_TICKS * 7, p, grid.velocity(-15))
                track.note(grid.tick(bar, 8) + 20, STEP_TICKS * 6, p, grid.velocity(-20))
        elif s == "skank":
            for step in OFFBEAT_8THS:
                for p in chord:
                    track.note(grid.tick(bar, step), STEP_TICKS * 0.8, p + 12, grid.velocity())
        elif s == "boom_chick":
            for step in range(0, style.steps, 4):
                strum = chord if step % 8 else chord[:1]
                for i, p in enumerate(strum):
                    track.note(grid.tick(bar, step) + 15 * i, STEP_TICKS * 3, p, grid.velocity())
        else:
            raise ValueError(f"unknown comp style {s!r}")


def _lead_notes(style, grid, rng, key, progression, n_bars, track):
    scale = SCALES[style.scale]
    lo, hi = style.lead_register
    pitches = [p for p in range(lo, hi + 1) if (p - key) % 12 in scale]
    idx = len(pitches) // 2
    for bar in range(n_bars):
        if style.comp_style == "pad":  # electronic: 16th-note arpeggio of the chord
            root, quality = progression[bar % len(progression)]
            chord = _chord_pitches(key, root, quality, lo)
            for step in range(style.steps):
                track.note(grid.tick(bar, step, humanize=False), STEP_TICKS * 0.7, chord[step % len(chord)] + 12 * (step % 8 >= 4),
                           grid.velocity(-10))
            continue
        for step in range(0, style.steps, 2):
            if rng.random() >= style.lead_density:
                continue
            idx = int(np.clip(idx + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(pitches) - 1))
            length = STEP_TICKS * rng.choice([2, 2, 4])
            track.note(grid.tick(bar, step), length * 0.9, pitches[idx], grid.velocity())


def compose(style: GenreStyle, rng: np.random.Generator, min_seconds: float) -> tuple[mido.MidiFile, float]:
    """Compose one clip of ``style`` lasting at least ``min_seconds``.

    Returns the MIDI file and its tempo in BPM.
    """
    bpm = float(rng.uniform(*style.tempo))
    bar_seconds = style.steps / 4 * 60.0 / bpm
    n_bars = math.ceil(min_seconds / bar_seconds) + 1
    key = int(rng.integers(-5, 7)) % 12
    progression = style.progressions[rng.integers(len(style.progressions))]
    grid = _Grid(style, rng)

    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    midi.tracks.append(meta)

    parts = [(0, style.bass_programs, _bass_notes, 100), (1, style.comp_programs, _comp_notes, 85),
             (2, style.lead_programs, _lead_notes, 95)]
    for channel, programs, writer, volume in parts:
        track = _Track(channel, int(rng.choice(programs)), volume)
        writer(style, grid, rng, key, progression, n_bars, track)
        midi.tracks.append(track.to_midi_track())
    if style.drum_kits:
        drums = _Track(DRUM_CHANNEL, int(rng.choice(style.drum_kits)), 100)
        _drums(style, grid, rng, n_bars, drums)
        midi.tracks.append(drums.to_midi_track())
    return midi, bpm


# Solo instruments for checking what a tagger hears: MagnaTagATune tag -> (General MIDI program, register
# (lowest, highest MIDI note), whether it plays chords under its melody).
SOLO_INSTRUMENTS = {
    "piano": (0, (60, 84), True), "guitar": (24, (52, 76), True), "violin": (40, (67, 91), False),
    "flute": (73, (72, 93), False), "harpsichord": (6, (60, 84), True), "cello": (42, (43, 67), False),
    "sitar": (104, (57, 79), False), "choir": (52, (57, 76), True),
}

# General MIDI instruments the taggers' students hear alone in training (name -> (program, register, plays
# chords)).  The eight instruments of the solo check are among them; training renders them from other seeds.
TRAINING_INSTRUMENTS = {
    **SOLO_INSTRUMENTS,
    "bright piano": (1, (60, 84), True), "electric piano": (4, (55, 79), True), "vibraphone": (11, (60, 84), False),
    "organ": (19, (55, 79), True), "steel guitar": (25, (52, 76), True), "jazz guitar": (26, (52, 76), True),
    "clean guitar": (27, (52, 76), True), "overdriven guitar": (29, (45, 69), True),
    "distortion guitar": (30, (40, 64), True), "acoustic bass": (32, (28, 52), False),
    "strings": (48, (55, 79), True), "trumpet": (56, (58, 82), False), "tenor sax": (66, (48, 72), False),
    "oboe": (68, (60, 84), False), "clarinet": (71, (52, 76), False), "synth lead": (81, (60, 84), False),
}


def compose_solo(instrument: str | tuple[int, tuple[int, int], bool], rng: np.random.Generator,
                 seconds: float) -> mido.MidiFile:
    """One instrument alone (a tag of :data:`SOLO_INSTRUMENTS`, or (General MIDI program, register, plays
    chords)): a stepwise melody in a random key and scale at a slow tempo (70-100 BPM), over a held chord per
    bar where the instrument plays chords."""
    program, (lo, hi), plays_chords = SOLO_INSTRUMENTS[instrument] if isinstance(instrument, str) else instrument
    bpm = float(rng.uniform(70, 100))
    bar_ticks = 4 * TICKS_PER_BEAT
    n_bars = math.ceil(seconds / (4 * 60 / bpm)) + 1
    key = int(rng.integers(0, 12))
    scale = SCALES[str(rng.choice(["major", "minor", "dorian"]))]
    pitches = [p for p in range(lo, hi + 1) if (p - key) % 12 in scale]
    progression = [(0, "maj"), (5, "maj"), (7, "maj"), (9, "min")]
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    midi.tracks.append(meta)
    track = _Track(0, program, 110)
    idx, tick = len(pitches) // 2, 0
    while tick < n_bars * bar_ticks:
        length = int(rng.choice([1, 2, 2, 4])) * TICKS_PER_BEAT // 2
        idx = int(np.clip(idx + rng.choice([-2, -1, -1, 1, 1, 2]), 0, len(pitches) - 1))
        track.note(tick, length, pitches[idx], int(rng.integers(80, 110)))
        tick += length
    if plays_chords:
        for bar in range(n_bars):
            root, quality = progression[bar % len(progression)]
            for pitch in _chord_pitches(key, root, quality, lo - 12):
                track.note(bar * bar_ticks, bar_ticks, pitch, 70)
    midi.tracks.append(track.to_midi_track())
    return midi
