"""MIDI input ports through python-rtmidi (JACK MIDI, else ALSA): open one (to feed a MidiControl), close it
safely, list them.

Messages wait in rtmidi's own queue (no Python callback: rtmidi would call it on JACK's process thread, which
would then wait for the interpreter lock and hold up the audio cycle); the live worker fetches them before each
chunk (:meth:`dreamfx.plugin.midi.MidiControl.apply_pending`).
"""

from __future__ import annotations

import os
import time

from dreamfx.errors import DreamfxError


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


def open_midi_input(port: str | int | None = None, virtual: str | None = None):
    """Open a MIDI input: an existing port (name part or number) or a new virtual port.

    Uses the first running MIDI system (JACK, then ALSA).  Returns the rtmidi.MidiIn: feed a
    :class:`~dreamfx.plugin.midi.MidiControl` with ``control.source = midi_in.get_message``, close it with
    :func:`close_midi_port`.
    """
    _, _, midi_in = next(midi_systems(), (None, None, None))
    if midi_in is None:
        raise DreamfxError("no MIDI system is running: start a JACK server (jackd) or load the ALSA sequencer")
    midi_in.ignore_types(sysex=True, timing=True, active_sense=True)
    if virtual is not None:
        midi_in.open_virtual_port(virtual)
    else:
        midi_in.open_port(find_port(midi_in.get_ports(), port))
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
