"""The streaming engine's invariants: null test, block-size independence, determinism, a real dream."""

from __future__ import annotations

import numpy as np
import pytest

from dreamfx.plugin.effect import DreamEffect
from dreamfx.validate.metrics import measure_retention, snr_db
from conftest import excerpt

BLOCK_SIZES = (1, 7, 64, 511, 4096, 16384)


def stream(effect: DreamEffect, audio: np.ndarray, sr: int, block: int) -> np.ndarray:
    """Feed audio + latency zeros in ``block``-sample calls; return the latency-compensated output."""
    effect.reset()
    latency = effect.latency_samples(sr)
    padded = np.concatenate([audio, np.zeros((audio.shape[0], latency), np.float32)], axis=1)
    out = np.concatenate([effect(padded[:, i:i + block], sr, reset=False)
                          for i in range(0, padded.shape[1], block)], axis=1)
    return out[:, latency:]


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000, 96000])
def test_null_at_intensity_zero(sample_rate):
    audio = excerpt(1.5, sample_rate)
    effect = DreamEffect(intensity=0.0)
    out = effect(audio, sample_rate)
    assert out.shape == audio.shape and out.dtype == np.float32
    assert np.abs(out - audio).max() <= 1e-5
    # streaming: the same signal, delayed by exactly the reported latency
    latency = effect.latency_samples(sample_rate)
    effect.reset()
    live = effect(audio, sample_rate, buffer_size=1000, reset=False)
    assert np.abs(live[:, :latency]).max() <= 1e-5
    assert np.abs(live[:, latency:] - audio[:, :-latency]).max() <= 1e-5


@pytest.mark.parametrize("channels", [1, 2])
def test_block_size_independence(channels):
    sr = 22050
    audio = excerpt(1.2, sr)[:channels]
    effect = DreamEffect(intensity=1.0, iterations=3, jitter=2, seed=5)
    offline = effect(audio, sr)
    assert np.abs(offline - audio).max() > 0.01, "the dream must change the audio for this test to mean anything"
    for block in BLOCK_SIZES:
        streamed = stream(effect, audio, sr, block)
        assert np.abs(streamed - offline).max() <= 1e-5, f"block size {block}"


def test_determinism_and_reset():
    sr = 22050
    audio = excerpt(1.0, sr)
    a = DreamEffect(jitter=2, seed=11)
    first = a(audio, sr)
    again = a(audio, sr)               # reset=True restarts from silence
    a.reset()
    streamed = stream(a, audio, sr, 4096)
    fresh = DreamEffect(jitter=2, seed=11)(audio, sr)
    for other in (again, streamed, fresh):
        assert np.array_equal(first, other)
    other_seed = DreamEffect(jitter=2, seed=12)(audio, sr)
    assert np.abs(other_seed - first).max() > 1e-3, "the seed must matter when jitter is on"


@pytest.mark.parametrize("preset", ["drum-ghosts", "metal-hallucination", "subtle-shimmer"])
def test_offline_batches_equal_streaming_within_rounding(preset, measured):
    """offline_batch dreams many chunks in one batch: the same dream as streaming, chunk by chunk, up to the
    rounding a batch adds (amplified as the preset's dream amplifies any input noise)."""
    sr = 44100
    audio = excerpt(4.0, sr)
    effect = DreamEffect.from_preset(preset)
    streamed = stream(effect, audio, sr, 512)  # one chunk at a time
    assert np.array_equal(effect(audio, sr), streamed)  # offline_batch 1: bit for bit
    effect.offline_batch = 16
    batched = effect(audio, sr)
    stats = effect.stats
    snr = snr_db(streamed, batched)
    measured(f"{preset}, offline_batch 16 vs streaming: {stats.batched_chunks} of {stats.chunks} chunks batched, "
             f"max difference {np.abs(batched - streamed).max():.1e}, SNR {snr:.1f} dB")
    assert stats.batched_chunks >= stats.dreamed_chunks - 2 > 0
    assert snr >= 60


def test_dream_is_real_on_example(example, measured):
    audio, sr = example
    effect = DreamEffect.from_preset("default")
    report = measure_retention(effect, audio, sr)
    measured(f"default preset on the example clip: {report.summary()}")
    assert report.objective_audio > 1.5 * report.objective_dry, "re-analysed audio must show the objective raised"
    assert report.gain_audio > 0 and report.gain_spectral > 0
    assert report.retention > 0.5


def test_class_objective_moves_the_classifier_toward_the_target(example, measured):
    audio, sr = example
    effect = DreamEffect(target="metal", iterations=8)
    report = measure_retention(effect, audio, sr)
    measured(f"target='metal' on the example clip: {report.summary()}")
    assert report.objective_audio > report.objective_dry + 1.0  # logit of 'metal' rises in the rendered audio


def test_multichannel_is_linked_and_channel_order_preserved():
    sr = 22050
    stereo = excerpt(1.0, sr)
    quad = np.concatenate([stereo, 0.5 * stereo[::-1]], axis=0)
    effect = DreamEffect(iterations=2)
    out = effect(quad, sr)
    assert out.shape == quad.shape and np.isfinite(out).all()
    swapped = effect(quad[[1, 0, 3, 2]], sr)
    assert np.abs(swapped - out[[1, 0, 3, 2]]).max() <= 1e-5


@pytest.mark.parametrize("sample_rate", [8000, 192000])
def test_extreme_sample_rates_dream(sample_rate):
    audio = excerpt(0.8, sample_rate)
    out = DreamEffect(iterations=2)(audio, sample_rate)
    assert np.isfinite(out).all()
    assert 0.001 < np.abs(out - audio).max() < 2.0


def test_nonfinite_stream_input_never_reaches_later_blocks():
    sr = 22050
    audio = excerpt(1.0, sr)
    effect = DreamEffect(iterations=2)
    engine = effect.engine(sr, 2)
    bad = audio[:, :2048].copy()
    bad[0, 100] = np.nan
    bad[1, 200] = np.inf
    outputs = [engine.process(bad)] + [engine.process(audio[:, i:i + 2048]) for i in range(0, audio.shape[1], 2048)]
    assert all(np.isfinite(o).all() for o in outputs)
    assert engine.stats.nonfinite_blocks == 1


def test_intensity_change_is_ramped_not_stepped():
    """Jumping intensity 0 -> 1 mid-stream: no sample jump beyond what the dry and fully-wet signals contain."""
    sr = 22050
    audio = excerpt(1.5, sr)
    effect = DreamEffect(intensity=0.0, iterations=4)
    effect.reset()
    half = audio.shape[1] // 2
    first = effect(audio[:, :half], sr, reset=False)
    effect.intensity = 1.0
    second = effect(audio[:, half:], sr, reset=False)
    out = np.concatenate([first, second], axis=1)
    wet = stream(DreamEffect(intensity=1.0, iterations=4), audio, sr, 4096)
    latency = effect.latency_samples(sr)
    limit = max(np.abs(np.diff(audio)).max(), np.abs(np.diff(wet)).max())
    assert np.abs(np.diff(out[:, latency:])).max() <= 1.05 * limit


def test_consistent_frames_are_what_overlap_add_delivers():
    """OverlapAdd.consistent: the STFT of a real signal comes back unchanged (bar the last frames, which no later
    frame completes yet); a random spectrogram, which no signal has, is moved, and a second pass barely moves it."""
    import torch
    from dreamfx.dsp.spectral import OverlapAdd, StftConfig, stft
    cfg, k = StftConfig(22050, 2048, 512), 8
    signal = torch.from_numpy(excerpt(1.0, cfg.sample_rate)[:1, :cfg.pad + 13 * cfg.hop].copy())
    spec = stft(signal, cfg)                         # (1, n_bins, 13)
    ola = OverlapAdd(cfg, 1)
    ola.push(spec[..., :5])
    new = spec[..., 5:5 + k]
    back = ola.consistent(new)
    relative = lambda a, b: float((a - b).abs().norm() / b.abs().norm())  # noqa: E731
    assert relative(back[..., :k - 2], new[..., :k - 2]) < 1e-5
    rng = torch.Generator().manual_seed(0)
    noise = torch.polar(2 * new.abs() * torch.rand(new.shape, generator=rng),
                        6.283 * torch.rand(new.shape, generator=rng))
    once = ola.consistent(noise)
    assert relative(once, noise) > 0.3
    assert relative(ola.consistent(once)[..., :k - 2], once[..., :k - 2]) < 0.5 * relative(once, noise)
