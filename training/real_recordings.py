"""Real recordings from Debian's packages (game music, and Muldjord's metal songs), split by package so nothing
leaks between uses.

    train  the students' and judges' distillation (training/distill.py: DISTILL_PACKAGES; the live student,
           training/student.py: all nine), less the recordings a package holds out to measure agreement on
    tune   choosing the presets' dream settings
    test   held-out: the transfer benchmark's verdicts (benchmarks/transfer.py), never tuned on

Every package's licence is in ``/usr/share/doc/PACKAGE/copyright`` (summarised in :data:`PACKAGES`).  Never
used here: wesnoth's music packages, nexuiz-music and fretsonfire-songs-sectoid, kept for independent checks.
Install with

    apt-get install -y asc-music drascula-music hyperrogue-music warzone2100-music xmoto-data supertux-data \
        hedgewars-data warmux-data freedroidrpg-data megaglest-data colobot-common-sounds \
        fretsonfire-songs-muldjord extremetuxracer-data lincity-ng-data
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Package:
    name: str
    glob: str        # the music files, relative to /
    licence: str     # summary of /usr/share/doc/<name>/copyright for these files
    split: str       # "train", "tune" or "test"
    held_out: str = ""  # a pattern (Path.match) of its recordings never trained on: where agreement is measured
    name_parts: int = 1  # a recording's name: its file's stem (1), or its folder and stem (2: "song/guitar")
    max_windows: int | None = None  # windows a trainer takes of each recording (None: the trainer's own limit)
    min_seconds: float = 0.0  # shorter files are a game's jingles, not music: left out


PACKAGES = (
    Package("warzone2100-music", "usr/share/games/warzone2100/music/albums/*/*.opus",
            "CC-BY-SA-3.0 / CC0 (soundtrack of Warzone 2100)", "train"),
    Package("supertux-data", "usr/share/games/supertux2/music/*/*.ogg",
            "CC-BY-SA-3.0 / CC-BY-SA-4.0 / GPL-2+ (SuperTux music)", "train"),
    Package("drascula-music", "usr/share/scummvm/drascula/audio/*.ogg", "Drascula-License (free redistribution)",
            "train"),
    # Added for the live student (issue 24); the distilled students and the judge learned from the three above.
    Package("hedgewars-data", "usr/share/games/hedgewars/Data/Music/*.ogg", "GPL-2 (Hedgewars music)", "train"),
    Package("warmux-data", "usr/share/games/warmux/music/*/*.ogg", "GPL-2+ (WarMUX music)", "train"),
    Package("freedroidrpg-data", "usr/share/freedroidrpg/data/sound/music/*.ogg", "GPL-2+ (FreedroidRPG music)",
            "train"),
    Package("megaglest-data", "usr/share/games/megaglest/techs/megapack/factions/*/music/*.ogg",
            "CC-BY-SA-3.0 (MegaGlest factions' music)", "train"),
    Package("colobot-common-sounds", "usr/share/games/colobot/music/*.ogg", "GPL-3+ (Colobot music)", "train"),
    # Added for issue 31: real metal, each song's mix and its guitar alone; one song is held out of training to
    # measure the students' agreement on metal and guitar.
    Package("fretsonfire-songs-muldjord", "usr/share/games/fretsonfire/data/songs/muldjord/*/*.ogg",
            "CC-BY-SA-3.0 (four songs by the Danish metal band Muldjord, El Senator: mixes and guitar stems)", "train",
            held_out="mutilated_mime/*.ogg", name_parts=2, max_windows=1000),  # whole songs: the only metal
    Package("xmoto-data", "usr/share/games/xmoto/Textures/Musics/*.ogg", "GPL-2+ (X-Moto music)", "tune"),
    # Added at stop 45: seven recordings alone told settings apart by one in seven (14 %); eighteen by 6 %.
    Package("extremetuxracer-data", "usr/share/games/etr/music/*.ogg", "GPL-2+ (Extreme Tux Racer music)", "tune",
            min_seconds=12.0),
    Package("lincity-ng-data", "usr/share/games/lincity-ng/music/default/*.ogg", "GPL-2+ (LinCity-NG music)", "tune"),
    Package("hyperrogue-music", "usr/share/hyperrogue/music/*.ogg",
            "CC-BY-SA-3.0 / CC-BY-3.0 / CC-BY-SA-4.0 / CC0 (HyperRogue soundtrack)", "test"),
    Package("asc-music", "usr/share/games/asc/music/*.mp3", "GPL-2+ (Advanced Strategic Command music)", "test"),
)
SPLITS = ("train", "tune", "test")
INSTALL = "apt-get install -y " + " ".join(p.name for p in PACKAGES)


def recordings(split: str, packages: Collection[str] | None = None) -> list[Path]:
    """The installed recordings of ``split`` (of ``packages`` only, when given), sorted (packages not installed
    contribute none)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return sorted(path for p in PACKAGES if p.split == split and (packages is None or p.name in packages)
                  for path in Path("/").glob(p.glob) if not p.min_seconds or recording_seconds(path) >= p.min_seconds)


@functools.cache
def recording_seconds(path: Path) -> float:
    """A recording's length, read from its header once per process."""
    import soundfile
    return soundfile.info(str(path)).duration


def package_of(path: Path) -> Package:
    """The package a recording came from."""
    return next(p for p in PACKAGES if Path(path).match("/" + p.glob))


def recording_name(path: Path) -> str:
    """A recording's name in training records: ``hr3-jungle``, ``armygeddon/guitar``."""
    path = Path(path)
    return "/".join(path.with_suffix("").parts[-package_of(path).name_parts:])


def is_held_out(path: Path) -> bool:
    """Whether its package holds the recording out of training (to measure agreement on)."""
    held_out = package_of(path).held_out
    return bool(held_out) and Path(path).match(held_out)


def read_recording(path: Path, sample_rate: int, start_s: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """(channels, samples) float32 of ``path`` (or of ``seconds`` from ``start_s``) at ``sample_rate``
    (libsndfile decodes mp3, ogg and opus; soxr resamples)."""
    import librosa
    import soundfile
    info = soundfile.info(str(path))
    start = int(start_s * info.samplerate)
    frames = -1 if seconds is None else int(seconds * info.samplerate)
    audio, rate = soundfile.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    return librosa.resample(np.ascontiguousarray(audio.T), orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")


def read_mono(path: Path, sample_rate: int, start_s: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """(samples,) float32 downmix of :func:`read_recording`."""
    return read_recording(path, sample_rate, start_s, seconds).mean(axis=0)
