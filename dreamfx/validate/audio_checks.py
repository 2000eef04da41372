"""The audio checks: block sizes, sample rates and channel counts change nothing but the delay; signals come
out clean; bad input never reaches the output; the reported latency is true, streaming equals offline, a reset
repeats.
"""

from __future__ import annotations

import numpy as np

from dreamfx.plugin.chain import FLOAT32_TINY
from dreamfx.validate.framework import (BLOCK_SIZES, CHANNEL_COUNTS, CHANNEL_SNR_DB, PEAK_HEADROOM_DB, SILENCE_DBFS,
                                        Context, check, expect, max_difference, one_line_error, stream)
from dreamfx.validate.metrics import snr_db


# --- blocks, rates, channels -------------------------------------------------------------------------
@check("blocks", 1)
def empty_block(ctx: Context) -> str:
    for shape in ((2, 0), (0, 2), (0,)):
        out = ctx.effect(np.zeros(shape, np.float32), ctx.sr)
        expect(out.shape == shape, f"an empty {shape} block came back as {out.shape}")
    x = ctx.noise()
    plain = stream(ctx.effect, x, ctx.sr, 512)
    ctx.effect.reset()
    with_empty = np.concatenate([np.concatenate([ctx.effect(x[:, i:i + 512], ctx.sr, reset=False),
                                                 ctx.effect(x[:, :0], ctx.sr, reset=False)], axis=1)
                                 for i in range(0, x.shape[1], 512)], axis=1)
    expect(np.array_equal(plain, with_empty), f"empty blocks mid-stream changed the output by "
           f"{max_difference(plain, with_empty):.3g}")
    return "(2, 0), (0, 2), (0,) kept; empty blocks mid-stream change nothing"


@check("blocks", 1)
def one_sample_blocks(ctx: Context) -> str:
    n = ctx.latency() + ctx.chunk_samples() + 100
    x = ctx.noise(samples=n)
    whole = stream(ctx.effect, x, ctx.sr, n)
    # A fresh effect reads a (2, 1) block as one channel of two samples, as pedalboard does; after a first
    # block it keeps the layout it has seen.
    ones = stream(ctx.effect, x, ctx.sr, [64, 1])
    expect(np.array_equal(whole, ones), f"1-sample blocks differ from one call by {max_difference(whole, ones):.3g}")
    mono = stream(ctx.effect, x[0], ctx.sr, 1)
    expect(np.array_equal(mono, stream(ctx.effect, x[0], ctx.sr, n)), "mono 1-sample blocks differ from one call")
    return f"{n} one-sample calls, stereo and mono: identical to one call"


@check("blocks", 2)
def block_sizes(ctx: Context) -> str:
    x = ctx.noise()
    whole = stream(ctx.effect, x, ctx.sr, x.shape[1])
    sizes = BLOCK_SIZES[1:] if ctx.strictness >= 4 else (100, 511, 4096)
    for size in sizes:
        out = stream(ctx.effect, x, ctx.sr, size)
        expect(np.array_equal(whole, out), f"blocks of {size} differ from one call by {max_difference(whole, out):.3g}")
    # a host's blocks vary around loop points and automation: random sizes, small and large
    varying = np.random.default_rng(2).integers(1, 4097, x.shape[1]).tolist()
    out = stream(ctx.effect, x, ctx.sr, varying)
    expect(np.array_equal(whole, out), f"blocks of varying size (1..4096) differ from one call by "
           f"{max_difference(whole, out):.3g}")
    return f"blocks of {', '.join(map(str, sizes))} and of varying size (1..4096) at {ctx.sr} Hz: identical to one call"


@check("blocks", 3)
def sample_rates(ctx: Context) -> str:
    sizes = (256, 1024) if ctx.strictness < 6 else BLOCK_SIZES[2:]
    for sr in ctx.subject.sample_rates:
        n = int(ctx.samples * sr / ctx.sr)
        x = ctx.noise(samples=n, sample_rate=sr)
        offline = ctx.effect(x, sr)
        expect(bool(np.isfinite(offline).all()), f"NaN/Inf out at {sr} Hz")
        whole = stream(ctx.effect, x, sr, n)
        for size in sizes:
            out = stream(ctx.effect, x, sr, size)
            expect(np.array_equal(whole, out), f"at {sr} Hz, blocks of {size} differ by {max_difference(whole, out):.3g}")
        latency = ctx.latency(sr)
        expect(np.array_equal(whole[:, latency:], stream(ctx.effect, x, sr, n)[:, latency:]), f"not repeatable at {sr}")
    rates = ", ".join(f"{r / 1000:g}" for r in ctx.subject.sample_rates)
    return f"{rates} kHz x blocks of {', '.join(map(str, sizes))}: finite, identical to one call"


@check("blocks", 2)
def channels(ctx: Context) -> str:
    mono = ctx.noise(channels=1)[0]
    for count in CHANNEL_COUNTS:
        x = np.tile(mono, (count, 1))
        out = ctx.effect(x, ctx.sr)
        expect(out.shape == x.shape and bool(np.isfinite(out).all()), f"{count} channels: shape {out.shape} or NaN")
    expect(ctx.effect(mono, ctx.sr).shape == mono.shape, "a 1-D block came back in another shape")
    worst = float("inf")
    for dream in ctx.dreams():   # the dream's gain is one for all channels: equal channels stay equal
        alone = dream(mono, ctx.sr)
        six = dream(np.tile(mono, (6, 1)), ctx.sr)
        worst = min([worst] + [snr_db(alone, six[c]) for c in range(6)])
    expect(worst >= CHANNEL_SNR_DB, f"6 equal channels differ from the mono render: SNR {worst:.1f} dB")
    return f"1-D, 1, 2, 6 channels kept; 6 equal channels = the mono render (SNR >= {min(worst, 999):.1f} dB)"


# --- signals ------------------------------------------------------------------------------------------
@check("signals", 1)
def no_nan_inf(ctx: Context) -> str:
    bad = [name for name, (_, y) in ctx.renders().items() if not np.isfinite(y).all()]
    expect(not bad, f"NaN/Inf out for {', '.join(bad)}")
    return f"{', '.join(ctx.renders())}: all finite"


@check("signals", 1)
def no_subnormal(ctx: Context) -> str:
    counts = {name: int(((np.abs(y) > 0) & (np.abs(y) < FLOAT32_TINY)).sum()) for name, (_, y) in ctx.renders().items()}
    bad = {k: v for k, v in counts.items() if v}
    expect(not bad, f"subnormal samples out: {bad}")
    return "no subnormal sample in any output"


@check("signals", 1)
def peak(ctx: Context) -> str:
    rises = {name: 20 * np.log10(max(np.abs(y).max(), 1e-30) / np.abs(x).max())
             for name, (x, y) in ctx.renders().items() if np.abs(x).max() > 0}
    worst = max(rises, key=rises.get)
    expect(rises[worst] <= PEAK_HEADROOM_DB, f"{worst}: output peak {rises[worst]:+.1f} dB above the input's")
    return f"highest output peak {rises[worst]:+.1f} dB relative to the input's ({worst}); limit {PEAK_HEADROOM_DB:+.0f} dB"


@check("signals", 1)
def silence(ctx: Context) -> str:
    level = float(np.abs(ctx.renders()["silence"][1]).max())
    dbfs = 20 * np.log10(level) if level > 0 else -np.inf
    expect(dbfs <= SILENCE_DBFS, f"silence in gave {dbfs:.1f} dBFS out")
    return f"silence in -> {'digital silence' if level == 0 else f'{dbfs:.1f} dBFS'} out"


# --- bad input ----------------------------------------------------------------------------------------
BURSTS = {"NaN": np.nan, "+Inf": np.inf, "-Inf": -np.inf}


@check("faults", 1)
def nan_refused(ctx: Context) -> str:
    """NaN/Inf blocks are refused in one line and leave the stream as if they had never come."""
    x, block = ctx.noise(), 512
    clean = stream(ctx.effect, x, ctx.sr, block)
    for name, value in BURSTS.items():
        ctx.effect.reset()
        out = []
        for i in range(0, x.shape[1], block):
            if i == block * 3:
                bad = x[:, i:i + block].copy()
                bad[:, 100:140] = value
                message = one_line_error(lambda: ctx.effect(bad, ctx.sr, reset=False))
                expect(message is not None, f"a block with {name} was accepted")
            out.append(ctx.effect(x[:, i:i + block], ctx.sr, reset=False))
        got = np.concatenate(out, axis=1)
        expect(np.array_equal(got, clean), f"after a refused {name} block the stream differs by "
               f"{max_difference(got, clean):.3g}")
    bad = x.copy()
    bad[1, 1000] = np.nan
    expect(one_line_error(lambda: ctx.effect(bad, ctx.sr)) is not None, "an offline render of NaN was accepted")
    return "NaN, +Inf, -Inf blocks refused in one line; the stream goes on as if they had not come"


@check("faults", 2)
def nan_live(ctx: Context) -> str:
    """The live path (the engine behind the audio callback) takes NaN/Inf samples as silence and counts the
    blocks that held them."""
    x, block = ctx.noise(), 256
    for dream in ctx.dreams():
        engine = dream.engine(ctx.sr, 2)
        starts = range(0, x.shape[1], block)
        bursts = {4: np.nan, 9: np.inf, 10: -np.inf}
        engine.reset()
        got = []
        for k, i in enumerate(starts):
            piece = x[:, i:i + block].copy()
            if k in bursts:
                piece[:, 17] = bursts[k]
            got.append(engine.process(piece))
        counted = engine.stats.nonfinite_blocks
        engine.reset()
        silenced = x.copy()
        silenced[:, [i + 17 for k, i in enumerate(starts) if k in bursts]] = 0.0
        reference = np.concatenate([engine.process(silenced[:, i:i + block]) for i in starts], axis=1)
        got = np.concatenate(got, axis=1)
        expect(bool(np.isfinite(got).all()), "NaN/Inf reached the output")
        expect(np.array_equal(got, reference), f"NaN/Inf did not act as silence: the output differs by "
               f"{max_difference(got, reference):.3g} from the stream with those samples silent")
        expect(counted == len(bursts), f"{counted} non-finite blocks counted, {len(bursts)} sent")
    return f"{len(bursts)} blocks with NaN/Inf: counted, the output finite and as if those samples were silent"


# --- timing and state ----------------------------------------------------------------------------------
@check("timing", 1)
def latency_true(ctx: Context) -> str:
    dreams = ctx.dreams()
    saved = [d.intensity for d in dreams]
    x = np.zeros((2, ctx.samples), np.float32)
    x[:, 37] = 0.5
    try:
        for d in dreams:
            d.intensity = 0.0
        for d in dreams:
            latency = d.latency_samples(ctx.sr)
            out = stream(d, x, ctx.sr, 700)
            at = int(np.argmax(np.abs(out[0])))
            expect(at == 37 + latency, f"an impulse came out {at - 37} samples late, {latency} reported")
            expect(max_difference(out[:, latency:], x[:, :-latency]) <= 1e-6, "at intensity 0 the output is not "
                   "the input delayed")
        noise, total = ctx.noise(), ctx.latency()
        streamed = stream(ctx.effect, np.pad(noise, ((0, 0), (0, total))), ctx.sr, 4096)[:, total:]
        offline = ctx.effect(noise, ctx.sr)
        expect(max_difference(streamed, offline) <= 1e-6, f"the whole effect is not {total} samples late: streamed "
               f"and offline differ by {max_difference(streamed, offline):.3g}")
    finally:
        for d, value in zip(dreams, saved):
            d.intensity = value
    return f"{ctx.latency()} samples at {ctx.sr} Hz: an impulse comes out exactly that late at intensity 0"


@check("timing", 1)
def stream_equals_offline(ctx: Context) -> str:
    x, latency = ctx.renders()["noise"][0], ctx.latency()
    offline = ctx.renders()["noise"][1]
    streamed = stream(ctx.effect, np.pad(x, ((0, 0), (0, latency))), ctx.sr, 1024)[:, latency:]
    expect(np.array_equal(streamed, offline), f"streamed (blocks of 1024) and offline differ by "
           f"{max_difference(streamed, offline):.3g} (SNR {snr_db(offline, streamed):.1f} dB)")
    return "streamed in blocks of 1024, less the latency = the offline render, bit for bit"


@check("timing", 1)
def reset_identical(ctx: Context) -> str:
    x = ctx.noise()
    first = stream(ctx.effect, x, ctx.sr, 1000)
    ctx.effect(ctx.noise(), ctx.sr, reset=False)  # leave some state behind
    again = stream(ctx.effect, x, ctx.sr, 1000)
    expect(np.array_equal(first, again), f"after reset() the output differs by {max_difference(first, again):.3g}")
    return "reset() then the same input: identical output"


