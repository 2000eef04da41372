"""Judging a dream with networks that did not dream it (benchmarks/transfer.py, tests/test_transfer.py).

A tag is named with its tag set, ``msd:jazz`` or ``mtt:piano``.  A judge is any network that can say how
much of a tag it hears: the distilled judge trained for judging only (``tests/data/judge_deep.safetensors``,
training/distill.py), the shipped taggers for the tags the other tag set shares, the genre model for its
genres, the robust student — each only when the dream did not use it.

    probability(judge, audio, sample_rate, "msd:jazz")   # mean over 3 s patches
    kept(dry, wet, sample_rate)                          # (chroma correlation, onset-envelope correlation)
    toward(judge.profile(dry, sr), judge.profile(wet, sr), judge.profile(guide, sr))  # of the way to a guide
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamfx.nets.models import DreamNet, class_probabilities, load_model, patch_logits

JUDGE_FILE = Path(__file__).resolve().parents[2] / "tests" / "data" / "judge_deep.safetensors"
PATCH_SECONDS = 3.0
TAG_SETS = {"msd-vgg": "msd", "mtt-vgg": "mtt"}  # the shipped taggers' tag sets
# Tags another network knows under its own name: the other tag set's tagger, the genre model (softmax).
SHARED_TAGS = {"msd:metal": {"mtt-vgg": "metal", "default": "metal"}, "msd:jazz": {"default": "jazz"},
               "msd:heavy metal": {"mtt-vgg": "metal", "default": "metal"},
               "msd:guitar": {"mtt-vgg": "guitar"}, "mtt:guitar": {"msd-vgg": "guitar"},
               "mtt:metal": {"msd-vgg": "metal", "default": "metal"}, "mtt:piano": {}}


@dataclass
class Judge:
    name: str
    model: DreamNet

    def class_for(self, tag: str) -> str | None:
        """The judge's class for ``tag`` ("msd:jazz"), or None when it does not know it."""
        names = self.model.class_names
        if tag in names:
            return tag
        tag_set, bare = tag.split(":", 1)
        if TAG_SETS.get(self.name) == tag_set:
            return bare
        return SHARED_TAGS.get(tag, {}).get(self.name)

    def probability(self, audio: np.ndarray, sample_rate: int, tag: str) -> float:
        """Mean probability of ``tag`` over the 3 s patches of ``audio`` (channels, samples)."""
        return float(self.profile(audio, sample_rate)[self.model.class_names.index(self.class_for(tag))])

    def profile(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mean probabilities (n_classes,) over the 3 s patches of ``audio`` (channels, samples): sigmoid for
        taggers, softmax over the genres for a genre model."""
        step = self.model.spec.frame_step
        frames = round(PATCH_SECONDS * sample_rate / self.model.configure(sample_rate).hop) // step * step
        logits = patch_logits(self.model, audio, sample_rate, frames)
        return class_probabilities(self.model.spec, logits).mean(dim=0).numpy()


def load_judges(names: list[str]) -> list[Judge]:
    """Judges by name: a shipped model's name, or ``"judge-deep"`` (the network trained for judging only)."""
    return [Judge(name, load_model(JUDGE_FILE if name == "judge-deep" else name)) for name in names]


def judges_of(tag: str, dreamers: set[str], judges: list[Judge]) -> list[Judge]:
    """The judges that know ``tag`` and did not dream (``dreamers``: the names of the networks that did)."""
    return [j for j in judges if j.name not in dreamers and j.class_for(tag) is not None]


def toward(before: np.ndarray, after: np.ndarray, guide: np.ndarray) -> float:
    """How far a judge's probabilities moved from ``before`` toward ``guide``: the projection of after - before on
    guide - before, as a fraction of the way (0: not at all or sideways, 1: as far as the guide, < 0: away)."""
    way = guide - before
    return float((after - before) @ way / max(float(way @ way), 1e-12))


def kept(dry: np.ndarray, wet: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """How recognisable the song stays: Pearson correlations of the chroma (12 x frames, flattened) and of the
    onset-strength envelope of the downmixes of ``dry`` and ``wet`` (channels, samples), aligned.

    The chroma is taken from a constant-Q transform: an STFT chroma (2048-point frames, 21.5 Hz bins at 44.1 kHz)
    cannot resolve low pitch classes, so a change of timbre leaks into it (measured on a real recording:
    pedalboard's Chorus 0.84, Reverb 0.83 with STFT chroma, 0.93 / 0.96 with CQT chroma; another song 0.01).
    """
    import librosa
    a, b = dry.mean(axis=0), wet.mean(axis=0)
    chroma = [librosa.feature.chroma_cqt(y=x, sr=sample_rate, hop_length=1024).ravel() for x in (a, b)]
    onsets = [librosa.onset.onset_strength(y=x, sr=sample_rate, hop_length=512) for x in (a, b)]
    return float(np.corrcoef(*chroma)[0, 1]), float(np.corrcoef(*onsets)[0, 1])
