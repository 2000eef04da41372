"""Golden outputs of musicnn's own TensorFlow graphs, for the tests of the ported taggers.

    TF_USE_LEGACY_KERAS=1 tfenv/bin/python -m training.musicnn_reference \\
        wheels/musicnn-0.1.0-py3-none-any.whl -o tests/data/musicnn_reference.safetensors

(the venv of training/port_musicnn.py; the real recordings come from Debian's
``asc-music``).  Each clip is decoded with pedalboard.io, as the tests decode
it, resampled to 16 kHz and cut into 3 s log-mel patches by musicnn's own
recipe (``extractor.batch_data``: librosa.load, melspectrogram with n_fft 512,
hop 256, 96 bands, ``log10(10000 * mel + 1)``, 187-frame patches) and run
through musicnn's own TensorFlow graph (``models.define_model``, the checkpoint
restored, sigmoid), as ``extractor.extractor`` does.

One difference, on purpose: ``batch_data`` rounds the mel power to float16
before ``10000 * mel`` and overflows to inf wherever the mel power exceeds
6.55 (loud low bands: 166 of the example clip's 53 856 patch values), and
TensorFlow turns those into arbitrary outputs; here the patches stay float32.
The file also keeps musicnn's unmodified taggram (``CLIP/MODEL/extractor``) to
show what that rounding changes.

Stored per clip: ``CLIP/patches`` (patches, 187, 96) and ``CLIP/MSD_vgg``,
``CLIP/MTT_vgg`` (patches, 50) tag probabilities; the metadata says where
each clip came from.  CI checks the port against it without TensorFlow
(tests/test_taggers.py).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click
import numpy as np
from pedalboard.io import AudioFile

from dreamfx.audio_io import write_audio
from dreamfx.nets.models import example_clip_path
from training.port_musicnn import MODELS, unpack

ASC_MUSIC = Path("/usr/share/games/asc/music")
# name -> (file, offset s, seconds): the example clip whole, and 15 s of each real recording
CLIPS = {"example": (example_clip_path(), 0.0, None),
         "frontiers": (ASC_MUSIC / "frontiers.mp3", 30.0, 15.0),
         "machine_wars": (ASC_MUSIC / "machine_wars.mp3", 30.0, 15.0),
         "time_to_strike": (ASC_MUSIC / "time_to_strike.mp3", 30.0, 15.0)}


def log_mel_patches(wav: Path) -> np.ndarray:
    """(patches, 187, 96) float32: extractor.batch_data's recipe without its float16 rounding."""
    import librosa
    audio, sr = librosa.load(str(wav), sr=16000)
    mel = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=256, n_fft=512, n_mels=96).T
    rep = np.log10(10000 * mel.astype(np.float32) + 1)
    return np.stack([rep[t:t + 187] for t in range(0, rep.shape[0] - 187 + 1, 187)])


def tag_probabilities(models, name: str, patches: np.ndarray) -> np.ndarray:
    """musicnn's TensorFlow graph for ``name`` (as extractor.extractor builds and restores it) on ``patches``."""
    import tensorflow as tf
    from musicnn import configuration
    labels = configuration.MSD_LABELS if "MSD" in name else configuration.MTT_LABELS
    tf.compat.v1.reset_default_graph()
    x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
    is_training = tf.compat.v1.placeholder(tf.bool)
    y = tf.nn.sigmoid(models.define_model(x, is_training, name, len(labels))[0])
    with tf.compat.v1.Session() as session:
        tf.compat.v1.train.Saver().restore(session, str(Path(models.__file__).parent / name) + "/")
        return session.run(y, feed_dict={x: patches, is_training: False})


def read_clip(path: Path, offset: float, seconds: float | None, sample_rate: int | None = None):
    """((channels, samples) float32, sample rate): ``seconds`` from ``offset`` (None: to the end), at the file's
    own rate or resampled (pedalboard.io) to ``sample_rate``."""
    with AudioFile(str(path)) as raw, raw.resampled_to(sample_rate or raw.samplerate) as f:
        sr = int(f.samplerate)
        f.seek(int(offset * sr))
        frames = f.frames - f.tell() if seconds is None else int(seconds * sr)
        return f.read(frames).astype(np.float32), sr


@click.command()
@click.argument("wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("tests/data/musicnn_reference.safetensors"), show_default=True)
def main(wheel: Path, output: Path) -> None:
    """Record musicnn's own log-mel patches and tag probabilities for the test clips."""
    from safetensors.numpy import save_file
    with tempfile.TemporaryDirectory() as tmp:
        unpack(wheel, Path(tmp))
        sys.path.insert(0, tmp)
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        from musicnn import extractor, models
        tensors, sources = {}, {}
        for name, (path, offset, seconds) in CLIPS.items():
            audio, sr = read_clip(path, offset, seconds)
            wav = Path(tmp) / f"{name}.wav"
            write_audio(wav, audio, sr)
            patches = log_mel_patches(wav)
            tensors[f"{name}/patches"] = np.ascontiguousarray(patches)
            for model in MODELS:
                tensors[f"{name}/{model}"] = np.ascontiguousarray(tag_probabilities(models, model, patches))
                taggram, _ = extractor.extractor(str(wav), model=model, input_length=3, extract_features=False)
                tensors[f"{name}/{model}/extractor"] = np.ascontiguousarray(taggram, dtype=np.float32)
            sources[name] = {"file": path.name, "offset_s": offset, "seconds": audio.shape[1] / sr,
                             "sample_rate": sr, "patches": len(patches)}
            click.echo(f"{name}: {len(patches)} patches")
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(output), metadata={"clips": json.dumps(sources), "musicnn": "0.1.0",
                                              "tensorflow": __import__("tensorflow").__version__})
    click.echo(f"wrote {output}")


if __name__ == "__main__":
    main()
