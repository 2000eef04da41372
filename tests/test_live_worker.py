"""The live worker without a stream: graphs and program presets built before streaming, a whole chain live equal
to its offline render, a preset switch crossfaded without a click, the process settings a live session makes
(no huge-page collapse, short garbage collections), and the scheduler trace's verdict on a synthetic xrun.
The tests that stream through a JACK server are in test_live.py.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from dreamfx.plugin.chain import Chain
from dreamfx.plugin.effect import DreamEffect
from dreamfx.plugin.lv2 import LV2Plugin
from conftest import excerpt, require_lv2

SR, BLOCK = 48000, 256
OVERDRIVE, AMP = "http://drobilla.net/plugins/mda/Overdrive", "http://plugin.org.uk/swh-plugins/amp"


def test_graphs_are_built_before_streaming():
    """A layer change (MIDI CC5) or a note (a class) while streaming must never wait for a trace or an ONNX
    export: with MIDI every graph is built first; without, the objective's alone (nothing can change it)."""
    from dreamfx.live.processor import LiveProcessor
    from dreamfx.plugin.midi import MidiControl
    effect = DreamEffect(backend="torchscript")
    processor = LiveProcessor(Chain([effect]), SR, 2, BLOCK, control=MidiControl(effect))
    assert sorted(layer for layer, _ in processor.engine.backend.graphs) == ["conv1", "conv2", "conv3", "conv4",
                                                                             "logits"]
    alone = LiveProcessor(Chain([DreamEffect(backend="torchscript")]), SR, 2, BLOCK)
    assert [layer for layer, _ in alone.engine.backend.graphs] == ["conv3"]


def drive(processor, signal: np.ndarray, on_chunk=None) -> np.ndarray:
    """Run ``signal`` (2, n) through the processor's callback and worker step by step (no device, no clock)."""
    out, block = np.zeros_like(signal), np.zeros((BLOCK, 2), np.float32)
    processor.reset()
    for i in range(0, signal.shape[1] - BLOCK + 1, BLOCK):
        processor.callback(signal[:, i:i + BLOCK].T.copy(), block, BLOCK, None, None)
        out[:, i:i + BLOCK] = block.T
        while processor.inbox.size >= processor.chunk:
            if on_chunk is not None:
                on_chunk(processor.stats.chunks)
            processor.process_chunk()
    return out


@pytest.mark.parametrize("hosted", [False, True], ids=["pedalboard", "lv2"])
def test_a_whole_chain_live_equals_its_offline_render(hosted):
    """Chorus, a dream, Reverb and Limiter run by the live processor (its compiled callback's logic and its
    worker, driven block by block without a device) give the chain's offline render, delayed by the live
    latency: the pedalboard plugins get the same whole chunks live as offline; so do LV2 plugins (mda's
    Overdrive and Dragonfly's room in place of Chorus and Reverb).  (The deadline is set far off, so every chunk
    gets all its iterations, as offline.)"""
    import pedalboard
    from dreamfx.live.processor import LiveProcessor
    if hosted:
        require_lv2(OVERDRIVE, "mda-lv2")
        require_lv2("urn:dragonfly:room", "dragonfly-reverb-lv2")

    def chain() -> Chain:
        first, reverb = (LV2Plugin(OVERDRIVE, drive=0.5), LV2Plugin("urn:dragonfly:room")) if hosted else \
            (pedalboard.Chorus(), pedalboard.Reverb())
        return Chain([first, DreamEffect(intensity=0.8, iterations=2), reverb, pedalboard.Limiter(threshold_db=-3)])
    signal = excerpt(4.0, SR)  # the example clip, a real recording, resampled to 48 kHz
    processor = LiveProcessor(chain(), SR, 2, BLOCK, load_target=50.0, headroom=1024)
    live = drive(processor, signal)
    offline = chain()(signal, SR)
    latency, n = processor.latency, signal.shape[1] // BLOCK * BLOCK
    engine = processor.engine.stats
    assert engine.reduced_chunks == 0 and engine.deadline_dry_chunks == 0 and processor.stats.late_blocks == 0
    assert np.abs(offline - signal).max() > 0.05  # the chain changed the audio
    assert np.abs(live[:, latency:n] - offline[:, :n - latency]).max() <= 1e-6


@pytest.mark.parametrize("hosted", [False, True], ids=["pedalboard", "lv2"])
def test_preset_switch_crossfades_without_a_click(hosted):
    """A 440 Hz sine through a bypassed dream and 0 dB, switched to a preset at -12 dB (pedalboard's Gain, or
    swh's amplifier, an LV2 plugin): the level glides over one chunk.  Clicks are measured as the largest second
    difference (a sine's is tiny, a step's is not)."""
    import pedalboard
    from dreamfx.live.processor import LiveProcessor
    if hosted:
        require_lv2(AMP, "swh-lv2")

    def chain(gain_db: float) -> Chain:
        gain = LV2Plugin(AMP, gain=gain_db) if hosted else pedalboard.Gain(gain_db=gain_db)
        return Chain([DreamEffect(intensity=0.0, iterations=2), gain])
    processor = LiveProcessor(chain(0.0), SR, 2, BLOCK, chain_factory=lambda name: (chain(-12.0), None),
                              programs=("loud", "quiet"), preset_name="loud")
    n = 16 * processor.chunk // BLOCK * BLOCK
    sine = np.tile(0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / SR, dtype=np.float32), (2, 1))

    def switch_at_chunk_6(index: int) -> None:
        if index == 6:
            processor.program_change(1)
    out = drive(processor, sine, switch_at_chunk_6)
    assert processor.stats.switches == 1 and processor.preset_name == "quiet" and processor.stats.late_blocks == 0
    # chunk 6 (input samples from 6 chunks on) comes out after the STFT overlap: a chunk's output starts pad
    # samples before its input did, so the crossfade starts there, delayed by the latency
    fade_start = processor.latency + 6 * processor.chunk - processor.engine.stft.pad
    fade_end = fade_start + processor.chunk
    quiet = 10 ** (-12 / 20)
    expected = np.concatenate([np.ones(fade_start), np.full(n - fade_start, quiet)])
    delayed = np.concatenate([np.zeros(processor.latency, np.float32), sine[0, :-processor.latency]])
    hard_switch = delayed * expected  # what switching chains without a crossfade would play
    click = lambda x: np.abs(np.diff(x, 2))  # noqa: E731
    steady = click(out[0, processor.latency + processor.chunk:fade_start]).max()
    assert click(hard_switch[fade_start - 100:fade_start + 100]).max() > 50 * steady  # the measure sees a step
    assert click(out[0, fade_start - 100:fade_end + 100]).max() < 1.2 * steady
    np.testing.assert_allclose(out[0, :fade_start], delayed[:fade_start], atol=1e-5)
    np.testing.assert_allclose(out[0, fade_end:], quiet * delayed[fade_end:], atol=1e-5)
    envelope = np.abs(out[0, fade_start:fade_end]).reshape(-1, processor.chunk // 4).max(axis=1)
    assert np.all(np.diff(envelope) < 0)  # a glide, no gap or bump


def test_program_presets_are_built_before_streaming_and_other_latencies_refused():
    """Every preset a program change can reach is built when the processor is; one of another chunk size
    or latency is refused then, named when it is chosen, and the running chain plays on."""
    from dreamfx.live.processor import LiveProcessor
    built = []

    def factory(name):
        built.append(name)
        return (Chain([DreamEffect(chunk_frames=16, context_frames=16)]) if name == "other" else
                Chain([DreamEffect(intensity=0.5)])), None
    processor = LiveProcessor(Chain([DreamEffect(intensity=0.0)]), SR, 2, BLOCK, chain_factory=factory,
                              programs=("same", "other", "same"))
    assert built == ["same", "other"] and list(processor.switchable) == ["same"]
    assert processor.unswitchable["other"].startswith("its chunk (8912 samples)")
    processor.program_change(3)
    assert processor.notice == "program 3: no preset (0..2)"
    processor.program_change(1)
    assert "preset 'other' not loaded: its chunk" in processor.notice and not processor.incoming
    processor.program_change(0)
    processor.program_change(2)  # the same preset again, before the switch: asked once
    assert list(processor.incoming) == [processor.switchable["same"]] and processor.notice == "already on same"


def huge_pages_of_fresh_mapping(size: int = 64 * 2**20) -> int:
    """AnonHugePages (kB) of a new anonymous mapping, madvised for huge pages as NumPy does, once touched."""
    import mmap
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    region.madvise(mmap.MADV_HUGEPAGE)
    array = np.frombuffer(region, dtype=np.uint8)
    array[::4096] = 1  # fault every page in
    first, last = array.ctypes.data, array.ctypes.data + size
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                inside = start < last and first < end
            elif inside and fields[0] == "AnonHugePages:":
                total += int(fields[1])
    del array
    region.close()
    return total


def test_streaming_keeps_huge_page_collapse_off_the_process():
    """NumPy madvises big arrays for huge pages; while streaming, new memory gets none and khugepaged, which
    would collapse it, skips the process."""
    if not sys.platform.startswith("linux"):
        pytest.skip("transparent huge pages are a Linux feature")
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as mode:
        if "[never]" in mode.read():
            pytest.skip("transparent huge pages are off on this machine: nothing to keep off")
    import ctypes
    from dreamfx.live.stream import PR_GET_THP_DISABLE, no_huge_page_collapse
    prctl = ctypes.CDLL(None).prctl
    before = huge_pages_of_fresh_mapping()
    with no_huge_page_collapse():
        during, disabled = huge_pages_of_fresh_mapping(), prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0)
    after, restored = huge_pages_of_fresh_mapping(), prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0)
    assert before > 0 and after > 0, "this kernel gave no huge pages to begin with"
    assert during == 0 and disabled == 1 and restored == 0


def test_streaming_keeps_full_garbage_collections_short(measured):
    """A full collection holds the GIL, which the audio callback needs, while it walks every tracked object;
    while streaming it walks only the objects made since the stream began."""
    import gc
    import torch  # noqa: F401  (the heap a live session has)
    from dreamfx.live.stream import no_full_garbage_collections

    def full_collection() -> tuple[int, float]:
        walked = len(gc.get_objects())  # what the collector tracks (frozen objects excluded)
        started = time.perf_counter()
        gc.collect()
        return walked, time.perf_counter() - started
    outside = full_collection()
    with no_full_garbage_collections():
        made_while_streaming = [[i] for i in range(1000)]
        inside = full_collection()
    frozen_after = gc.get_freeze_count()
    measured(f"full garbage collection: {outside[0]} objects walked in {1e3 * outside[1]:.1f} ms; while "
             f"streaming {inside[0]} in {1e3 * inside[1]:.2f} ms")
    assert outside[0] > 50_000 and frozen_after == 0  # the heap is given back to the collector afterwards
    assert len(made_while_streaming) <= inside[0] < outside[0] / 20


def synthetic_trace(cycles: int, late: dict[int, tuple[str, float, int]]) -> list[str]:
    """ftrace lines of JACK's driver thread (tid 100) on CPU 0, woken every 5.33 ms and running at once, while
    thread 500 (another process) runs there in between; ``late`` = {cycle: (kind, delay s, tid on the CPU)}:
    "timer" wakes the driver late, "cpu" lets it wait for the CPU, with thread ``tid`` current meanwhile."""
    period, t, lines = BLOCK / SR, 100.0, []

    def line(tid, when, event, rest):
        lines.append(f"          task-{tid}   [000] d..2. {when:.6f}: {event}: {rest}")
    for cycle in range(cycles):
        kind, delay, tid = late.get(cycle, ("", 0.0, 500))
        t += period + (delay if kind == "timer" else 0.0)
        line(tid, t - 0.001, "sched_switch", f"prev_comm=x prev_pid=500 prev_prio=120 prev_state=R ==> "
                                              f"next_comm=x next_pid={tid} next_prio=120")
        line(tid, t, "sched_wakeup", "comm=jackd pid=100 prio=89 target_cpu=000")
        run = t + (delay if kind == "cpu" else 0.00001)
        line(tid, run, "sched_switch", f"prev_comm=x prev_pid={tid} prev_prio=120 prev_state=R ==> "
                                       f"next_comm=jackd next_pid=100 next_prio=89")
        line(100, run + 0.0001, "sched_switch", "prev_comm=jackd prev_pid=100 prev_prio=89 prev_state=S ==> "
                                                "next_comm=x next_pid=500 next_prio=120")
    return lines


@pytest.mark.parametrize("late, counts, reason", [
    ({}, True, "driver thread ran on time and no audio thread waited"),
    ({20: ("timer", 0.007, 500)}, False, "woken 12.3 ms after its previous wake-up (period 5.3 ms): its timer "
                                         "interrupt came late, while no dreamfx thread"),
    ({20: ("timer", 0.007, 700)}, False, "its timer interrupt came late, while dreamfx's threads [700] ran"),
    ({20: ("cpu", 0.008, 500)}, False, "driver thread waited 8.0 ms for CPU 0, and no dreamfx thread ran there"),
    ({20: ("cpu", 0.008, 700)}, True, "driver thread waited 8.0 ms for CPU 0, which dreamfx's threads [700] held"),
])
def test_the_xrun_verdict_of_a_scheduler_trace(workdir, late, counts, reason):
    """Issue 14's rule on traces made to order (dreamfx's threads here: 700): a late timer interrupt is not
    dreamfx's, whoever ran; an audio thread kept from its CPU is dreamfx's if a dreamfx thread held it; a
    driver on time with no audio thread waiting means a callback overran, which counts."""
    from dreamfx.testing.sched_trace import SchedulerTrace, XrunTrace
    trace = SchedulerTrace(jackd_pid=1, period_s=BLOCK / SR, counter=lambda: 0, directory=workdir,
                           ours={700, 701}, jackd_threads={100, 101})
    lines = synthetic_trace(30, late)
    xrun = trace.judge(XrunTrace(seen_at=float(lines[-1].split()[3].rstrip(":")), path=workdir / "x"), lines)
    assert xrun.counts == counts and reason in xrun.reason, xrun.reason


def test_a_program_change_crossfades_between_two_guides():
    """live-guide-metal's programs (live-guide-metal, live-guide-ambient: two bundled guides): both chains, each
    with its guide's features, are built before streaming; program change 1 crossfades to the other guide on the
    next chunk with no late block.  Before the switch the output is the first guide's alone; after the crossfade
    it is neither that nor silence, and the fade is smooth (no larger sample-to-sample step than the music's own
    elsewhere)."""
    from dreamfx.live.processor import LiveProcessor, headroom_frames
    from dreamfx.plugin.presets import load_preset
    from dreamfx.recipe import build_chain
    source = load_preset("live-guide-metal")

    def processor(programs: tuple[str, ...]) -> LiveProcessor:
        return LiveProcessor(build_chain(source), SR, 2, BLOCK, load_target=50.0,
                             headroom=headroom_frames(source, SR), preset_name=source.name,
                             chain_factory=lambda name: (build_chain(name), load_preset(name).midi), programs=programs)
    switching, steady = processor(source.midi_map().programs), processor(())
    assert sorted(switching.switchable) == ["live-guide-ambient", "live-guide-metal"] and not switching.unswitchable
    guides = {name: switch.chain.dream_effects[0].guide for name, switch in switching.switchable.items()}
    assert guides["live-guide-metal"].endswith("muldjord-mutilated-mime.ogg")
    assert guides["live-guide-ambient"].endswith("warzone2100-menu.ogg")
    signal = excerpt(3.0, SR)

    def switch_at_chunk_6(index: int) -> None:
        if index == 6:
            switching.program_change(1)
    out = drive(switching, signal, switch_at_chunk_6)
    alone = drive(steady, signal)
    assert switching.stats.switches == 1 and switching.preset_name == "live-guide-ambient"
    assert switching.stats.late_blocks == 0
    assert switching.chain.dream_effects[0].guide == guides["live-guide-ambient"]
    fade_start = switching.latency + 6 * switching.chunk - switching.engine.stft.pad
    fade_end = fade_start + switching.chunk
    n = signal.shape[1] // BLOCK * BLOCK
    np.testing.assert_array_equal(out[:, :fade_start], alone[:, :fade_start])
    assert np.abs(out[:, fade_end:n] - alone[:, fade_end:n]).max() > 0.01
    steps = np.abs(np.diff(out[:, switching.latency:n], axis=1)).max(axis=0)  # per sample, both channels
    fade = slice(fade_start - 1 - switching.latency, fade_end - switching.latency)
    outside = np.concatenate([steps[:fade.start], steps[fade.stop:]])
    assert steps[fade].max() <= outside.max(), (steps[fade].max(), outside.max())
