"""The live audio callback, compiled: it copies between ring buffers without the Python interpreter.

    PortAudio thread (no GIL)                         Python (worker thread)
    input  -> inbox ring, dry delay ring     ---->    chunk <- inbox, chain, outbox <- result
    output <- outbox ring (or the dry ring when the worker is late)

A callback written in Python needs the interpreter lock, which any Python thread
(the dream worker, MIDI, a garbage collection, a C extension that keeps it) may
hold for longer than one audio period; that was the last source of xruns.
Here the callback is a numba ``cfunc`` handed to PortAudio directly: it runs on
PortAudio's thread without ever taking the lock.  It finds the buffers through
``user_data``, a pointer to an int64 array of addresses (:func:`callback_layout`);
the rings are :class:`~dreamfx.dsp.ringbuffer.RingBuffer` s, whose counters live in
int64 arrays for this purpose.

:func:`exchange` is the callback's whole logic; the Python callback (tests, and
``run_live(native=False)``) calls the same compiled function.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys

import numba
import numpy as np
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic

# Indices of the callback's counters (int64 array shared with LiveProcessor / LiveStats).
CALLBACKS, XRUNS, LATE_BLOCKS, DROPPED_FRAMES, OWED, LAST_XRUN = range(6)  # LAST_XRUN: callback number
N_COUNTERS = 6
# PortAudio's paInputUnderflow | paInputOverflow | paOutputUnderflow | paOutputOverflow
XRUN_FLAGS = 0x1 | 0x2 | 0x4 | 0x8
LAYOUT_SIZE = 11  # channels, then (data, counters, capacity) of inbox, outbox and dry, then the counters


@numba.njit(cache=True, nogil=True)
def _ring_write(data, count, source):
    """Append source (frames, channels) to the ring data (channels, capacity); publish after copying."""
    capacity = data.shape[1]
    start = count[0] % capacity
    for f in range(source.shape[0]):
        position = (start + f) % capacity
        for c in range(source.shape[1]):
            data[c, position] = source[f, c]
    count[0] += source.shape[0]


@numba.njit(cache=True, nogil=True)
def _ring_read(data, count, out):
    """Pop out.shape[0] frames of the ring into out (frames, channels)."""
    capacity = data.shape[1]
    start = count[1] % capacity
    for f in range(out.shape[0]):
        position = (start + f) % capacity
        for c in range(out.shape[1]):
            out[f, c] = data[c, position]
    count[1] += out.shape[0]


@numba.njit(cache=True, nogil=True)
def exchange(source, out, status, inbox, inbox_count, outbox, outbox_count, dry, dry_count, counters):
    """One callback: source / out (frames, channels) float32; status: PortAudio's flags.

    The input goes to the inbox (for the worker; counted as dropped when it is
    full) and to the dry delay ring; the output comes from the outbox, or, when
    the worker has not delivered, from the dry ring (a late block; the outbox
    frames it replaced are skipped once they arrive).
    """
    frames = source.shape[0]
    counters[CALLBACKS] += 1
    if status & XRUN_FLAGS:
        counters[XRUNS] += 1
        counters[LAST_XRUN] = counters[CALLBACKS]
    if inbox.shape[1] - (inbox_count[0] - inbox_count[1]) >= frames:
        _ring_write(inbox, inbox_count, source)
    else:
        counters[DROPPED_FRAMES] += frames
    _ring_write(dry, dry_count, source)
    owed = counters[OWED]
    if outbox_count[0] - outbox_count[1] >= owed + frames:
        outbox_count[1] += owed
        counters[OWED] = 0
        _ring_read(outbox, outbox_count, out)
        dry_count[1] += frames
    else:
        _ring_read(dry, dry_count, out)
        counters[OWED] = owed + frames
        counters[LATE_BLOCKS] += 1


@intrinsic
def _pointer(typingctx, address):
    """An int64 address as a void pointer (for numba.carray)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(types.int64), codegen


@numba.njit(cache=True, nogil=True)
def _ring(layout, base, channels):
    """The samples (channels, capacity) of the ring whose entry in the layout starts at ``base``."""
    return carray(_pointer(layout[base]), (channels, layout[base + 2]), np.float32)


@numba.njit(cache=True, nogil=True)
def _counts(layout, base):
    """The (written, consumed) counters of the ring whose entry in the layout starts at ``base``."""
    return carray(_pointer(layout[base + 1]), (2,), np.int64)


@numba.cfunc(types.int32(types.voidptr, types.voidptr, types.uint64, types.voidptr, types.uint64, types.voidptr),
             nopython=True, cache=True)
def audio_callback(input_, output, frame_count, time_info, status, user_data):
    """PortAudio's stream callback (interleaved float32 buffers), without the interpreter; returns paContinue."""
    layout = carray(user_data, (LAYOUT_SIZE,), np.int64)
    channels = layout[0]
    source = carray(input_, (frame_count, channels), np.float32)
    out = carray(output, (frame_count, channels), np.float32)
    counters = carray(_pointer(layout[10]), (N_COUNTERS,), np.int64)
    exchange(source, out, status, _ring(layout, 1, channels), _counts(layout, 1), _ring(layout, 4, channels),
             _counts(layout, 4), _ring(layout, 7, channels), _counts(layout, 7), counters)
    return 0


def callback_layout(channels: int, inbox, outbox, dry, counters: np.ndarray) -> np.ndarray:
    """The int64 array :func:`audio_callback` reads its buffers from (keep it and the buffers alive)."""
    layout = [channels]
    for ring in (inbox, outbox, dry):
        layout += [ring.data.ctypes.data, ring.counters.ctypes.data, ring.capacity]
    return np.array(layout + [counters.ctypes.data], dtype=np.int64)


class NativeStream:
    """A duplex PortAudio stream (opened through sounddevice's own PortAudio binding) that calls
    :func:`audio_callback` with ``layout``.  Use as a context manager, like ``sounddevice.Stream``."""

    def __init__(self, sd, layout: np.ndarray, sample_rate: int, blocksize: int, channels: int,
                 devices: tuple[int, int]):
        ffi, lib = sd._ffi, sd._lib
        parameters = []
        for device, kind in zip(devices, ("input", "output")):
            p = ffi.new("PaStreamParameters*")
            p.device, p.channelCount, p.sampleFormat = device, channels, lib.paFloat32
            p.suggestedLatency = sd.query_devices(device)[f"default_low_{kind}_latency"]
            p.hostApiSpecificStreamInfo = ffi.NULL
            parameters.append(p)
        self._sd, self._layout, self._stream = sd, layout, ffi.new("PaStream**")
        self._callback = ffi.cast("PaStreamCallback*", audio_callback.address)
        err = lib.Pa_OpenStream(self._stream, parameters[0], parameters[1], sample_rate, blocksize, 0,
                                self._callback, ffi.cast("void*", layout.ctypes.data))
        self._check(err, "Error opening Stream")

    def _check(self, err: int, what: str) -> None:
        """Raise sounddevice.PortAudioError, worded as sounddevice words it, for a PortAudio error code."""
        if err < 0:
            message = self._sd._ffi.string(self._sd._lib.Pa_GetErrorText(err)).decode()
            raise self._sd.PortAudioError(f"{what}: {message}", err)

    @property
    def latency(self) -> tuple[float, float]:
        """(input, output) latency PortAudio reports, seconds."""
        info = self._sd._lib.Pa_GetStreamInfo(self._stream[0])
        return info.inputLatency, info.outputLatency

    def __enter__(self) -> NativeStream:
        self._check(self._sd._lib.Pa_StartStream(self._stream[0]), "Error starting stream")
        return self

    def __exit__(self, *exc) -> None:
        lib = self._sd._lib
        lib.Pa_StopStream(self._stream[0])
        lib.Pa_CloseStream(self._stream[0])


@contextlib.contextmanager
def locked_in_memory(arrays: list[np.ndarray]):
    """Keep the pages of ``arrays`` resident (mlock, Linux) while the callback uses them: a page fault on the
    audio thread could wait for the process's memory-map lock, which another thread (an allocation of the
    worker's) may hold while it is not running."""
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    spans = [(ctypes.c_void_p(a.ctypes.data), ctypes.c_size_t(a.nbytes)) for a in arrays]
    locked = [span for span in spans if libc.mlock(*span) == 0]
    try:
        yield
    finally:
        for span in locked:
            libc.munlock(*span)
