"""Audio in memory and in files: the (channels, samples) layout, the NaN/Inf check, and reading and writing
files through pedalboard.io, with one-line errors and atomic writes.

An output file is written under a temporary name in its destination folder and
renamed into place only when complete, so an error or Ctrl-C never leaves a
half-written file, and the input is never the output.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile, get_supported_read_formats, get_supported_write_formats

from dreamfx.errors import DreamfxError
from dreamfx.files import atomic_path

READ_FORMATS = tuple(get_supported_read_formats())
WRITE_FORMATS = tuple(get_supported_write_formats())


def to_channels_first(array, channels_hint: int | None = None):
    """Return (float32 (channels, samples) array, function that restores the caller's layout)."""
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise DreamfxError(f"audio must be a float32 or float64 numpy array, got "
                           f"{type(array).__name__}{'' if not isinstance(array, np.ndarray) else ' of ' + str(array.dtype)}")
    if array.ndim == 1:
        return array[None].astype(np.float32, copy=False), lambda out: out[0]
    if array.ndim != 2:
        raise DreamfxError(f"audio must be 1-D (samples,) or 2-D (channels, samples), got shape {array.shape}")
    # the longer axis is time; an empty block's other axis is its channels (as pedalboard reads them)
    channels_last = (array.shape[0] > array.shape[1] > 0 and array.shape[0] != channels_hint) or array.shape[0] == 0
    if channels_last:
        return np.ascontiguousarray(array.T, dtype=np.float32), lambda out: out.T
    return np.ascontiguousarray(array, dtype=np.float32), lambda out: out


def check_finite(audio: np.ndarray, what: str, offset: int = 0,
                 remedy: str = "repair or re-export it before dreaming") -> None:
    """Raise DreamfxError naming the first NaN/Inf sample of ``audio`` (channels, samples), which starts at sample
    ``offset`` of ``what``, and ``remedy``."""
    bad = ~np.isfinite(audio)
    if bad.any():
        channel, sample = (int(i[0]) for i in np.nonzero(bad))
        raise DreamfxError(f"{what} contains NaN/Inf (first at sample {offset + sample}, channel {channel}): {remedy}")


def open_audio(path: Path):
    """Open ``path`` for reading, turning every failure into a one-line DreamfxError."""
    if path.is_dir():
        raise DreamfxError(f"{path} is a directory, expected an audio file: pass a file, or a folder as both IN and OUT")
    if not path.exists():
        raise DreamfxError(f"input file {path} not found")
    if path.suffix.lower() not in READ_FORMATS:
        raise DreamfxError(f"{path}: unsupported format {path.suffix or '(no extension)'}; "
                           f"readable formats are {' '.join(READ_FORMATS)}")
    try:
        return AudioFile(str(path))
    except Exception as exc:
        raise DreamfxError(f"{path} could not be read as audio ({str(exc).splitlines()[0]})") from None


def probe_audio(path: str | Path) -> int:
    """Check that ``path`` opens as audio; returns its length in samples."""
    with open_audio(Path(path)) as f:
        return f.frames


def read_audio(path: str | Path, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Read a file (only its first ``seconds`` when given); returns (float32 (channels, samples), sample rate in Hz)."""
    path = Path(path)
    if seconds is not None and not seconds > 0:
        raise DreamfxError(f"--seconds must be positive, got {seconds}")
    try:
        with open_audio(path) as f:
            frames = f.frames if seconds is None else min(f.frames, int(seconds * f.samplerate))
            sample_rate = checked_sample_rate(path, f, frames)
            audio = f.read(frames)
    except DreamfxError:
        raise
    except Exception as exc:
        raise DreamfxError(f"{path} could not be read as audio ({str(exc).splitlines()[0]})") from None
    check_finite(audio, str(path))
    return audio.astype(np.float32, copy=False), sample_rate


def checked_sample_rate(path: Path, f, frames: int) -> int:
    """The sample rate of the open file ``f`` (Hz), once it is known to hold ``frames`` > 0 samples at a whole
    number of Hz."""
    if frames == 0:
        raise DreamfxError(f"{path} holds no audio samples")
    if not float(f.samplerate).is_integer():
        raise DreamfxError(f"{path} has a fractional sample rate {f.samplerate}: resample it to a whole number of Hz")
    return int(f.samplerate)


def check_output_path(output: str | Path, inputs: list[Path] = (), overwrite: bool = False,
                      parent_must_exist: bool = True, formats: tuple[str, ...] = WRITE_FORMATS) -> Path:
    """Validate an output file path before any work is done (folder trees create parents later)."""
    output = Path(output)
    if output.is_dir():
        raise DreamfxError(f"{output} is a directory: give an output file name, or a folder as both IN and OUT")
    if output.suffix.lower() not in formats:
        raise DreamfxError(f"{output}: cannot write {output.suffix or '(no extension)'} files here; "
                           f"use {' '.join(formats)}")
    for src in inputs:
        if output.exists() and output.resolve() == Path(src).resolve():
            raise DreamfxError(f"refusing to overwrite the input {src}: choose another output path")
    if output.exists() and not overwrite:
        raise DreamfxError(f"{output} already exists: pass --overwrite or choose another path")
    if parent_must_exist and not output.parent.exists():
        raise DreamfxError(f"output folder {output.parent} does not exist: create it first")
    return output


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, bit_depth: int | None = None) -> Path:
    """Write (channels, samples) float32 atomically (see :func:`open_output`)."""
    path = Path(path)
    with open_output(path, sample_rate, audio.shape[0], bit_depth) as write:
        write(audio)
    return path


@contextlib.contextmanager
def open_output(path: Path, sample_rate: int, channels: int, bit_depth: int | None = None):
    """Open ``path`` for writing atomically; yields ``write(block)`` for float32 (channels, n) blocks.

    Default ``bit_depth``: 32-bit float for WAV/AIFF (no clipping), 24-bit for FLAC;
    lossy formats use their encoder's default quality.
    """
    if bit_depth is None:
        bit_depth = 32 if path.suffix.lower() in (".wav", ".aif", ".aiff") else 24
    kwargs = {"bit_depth": bit_depth} if path.suffix.lower() in (".wav", ".aif", ".aiff", ".flac") else {}

    def write(block: np.ndarray) -> None:
        check_finite(block, "output audio", remedy="a stage of the chain put it out (a filter's cutoff above half "
                     "the sample rate? feedback of 1 or more?): change that stage's settings; nothing was written")
        f.write((block if bit_depth == 32 else np.clip(block, -1.0, 1.0)).astype(np.float32, copy=False))
    with atomic_path(path) as tmp, AudioFile(str(tmp), "w", sample_rate, channels, **kwargs) as f:
        yield write
