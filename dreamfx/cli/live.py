"""Subcommands of the live instrument: live (audio in, dream, audio out, MIDI), devices."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dreamfx.audio_io import check_output_path
from dreamfx.cli.options import dream_options
from dreamfx.errors import DreamfxError
from dreamfx.plugin.presets import MIDI_PARAMETERS, is_midi_parameter, load_preset
from dreamfx.recipe import build_chain


@click.command()
@dream_options(preset="live-jazz")
@click.option("--input", "input_device", help="Input device (name part or number; default: the system's).")
@click.option("--output", "output_device", help="Output device (name part or number).")
@click.option("--samplerate", type=int, default=48000, show_default=True)
@click.option("--blocksize", type=int, default=256, show_default=True, help="Frames per audio callback.")
@click.option("--channels", type=int, default=2, show_default=True)
@click.option("--midi-port", help="Play the dream from this MIDI input port (name part or number).")
@click.option("--midi-virtual", help="Create a virtual MIDI input port with this name instead.")
@click.option("--record", type=click.Path(path_type=Path), help="Save the MIDI played, timed to the chunks it "
              "changed, to this .mid file (replay it with process --automation).")
@click.option("--duration", type=float, help="Stop after this many seconds (default: run until Ctrl-C).")
@click.option("--soak", type=float, metavar="SECONDS", help="Run this many seconds, then print xruns, late blocks, "
              "iterations achieved, worker load and latency.")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True, help="Compute threads of "
              "the dream (torch, onnxruntime); one runs at the worker's real-time priority, more do not.")
@click.option("--headroom", type=float, metavar="MS", help="Time the worker has for each chunk, part of the "
              "latency (default: the preset's live.headroom_ms, else measured before the stream starts).")
@click.option("--learn", metavar="PARAMETER", help=f"Bind the next MIDI controller moved to this parameter "
              f"({', '.join(MIDI_PARAMETERS)}, or a stage's control: chain[N].symbol, e.g. chain[2].wet_level), "
              "and save the preset with that MIDI map when the session ends.")
@click.option("--save-preset", type=click.Path(path_type=Path), help="Where --learn saves the preset (default: "
              "the preset file itself; needed for a shipped preset).")
def live(preset, model, chain_spec, input_device, output_device, samplerate, blocksize, channels, midi_port,
         midi_virtual, record, duration, soak, threads, headroom, learn, save_preset, **overrides) -> None:
    """Process live audio input through a preset's chain (full duplex), optionally played with MIDI.

    MIDI program change n switches to the preset's midi.programs[n] (default: the shipped presets in
    `dreamfx presets list` order), crossfaded over one chunk.
    """
    from dreamfx.engine.backends import torch_threads
    from dreamfx.live.processor import LiveProcessor, headroom_frames
    from dreamfx.live.stream import find_audio_device, run_live, soak_summary
    from dreamfx.plugin.midi import MidiControl
    from dreamfx.live.midi_ports import close_midi_port, open_midi_input
    from dreamfx.plugin.presets import PRESET_DIR, preset_names, preset_path
    if not 16 <= blocksize <= 8192:
        raise DreamfxError(f"--blocksize must be in 16..8192, got {blocksize}")
    if soak is not None and duration is not None:
        raise DreamfxError("--soak SECONDS runs for that long: drop --duration")
    if headroom is not None and not 0 <= headroom <= 1000:
        raise DreamfxError(f"--headroom must be in 0..1000 ms, got {headroom}")
    midi = midi_port is not None or midi_virtual is not None
    if (record is not None or learn is not None) and not midi:
        raise DreamfxError(f"{'--record' if record else '--learn'} needs MIDI input: add --midi-port or --midi-virtual")
    if learn is not None and not is_midi_parameter(learn):
        raise DreamfxError(f"--learn {learn}: use one of {', '.join(MIDI_PARAMETERS)} or a stage's control, "
                           "chain[N].symbol")
    if record is not None:
        check_output_path(record, [], formats=(".mid",))
    source = load_preset(preset)
    if learn is not None:
        save_preset = save_preset or preset_path(preset)
        if save_preset.resolve().parent == PRESET_DIR.resolve():
            raise DreamfxError(f"--learn would change the shipped preset {source.name!r}: add --save-preset my.toml")
        check_output_path(save_preset, [], overwrite=True, formats=(".toml",))
    # what the user named must exist before the chains are built (seconds, more for a MIDI performance's programs)
    devices = find_audio_device(input_device, "input"), find_audio_device(output_device, "output")
    midi_in = open_midi_input(midi_port, midi_virtual) if midi else None
    try:
        with torch_threads(threads):  # before the chains are built: onnxruntime sessions take this count too
            chain = build_chain(source, model, chain_spec, **overrides)

            def chain_factory(name: str):
                switched = load_preset(name)
                guide = overrides["guide"] if switched.needs_guide else None  # --guide serves the presets that need one
                return build_chain(switched, model, None, backend=overrides["backend"], device=overrides["device"],
                                   guide=guide), switched.midi

            control = MidiControl(chain.dream_effects[0], source.midi_map(), chain=chain) if midi else None
            programs = (source.midi_map().programs or tuple(preset_names())) if midi else ()  # by program change
            processor = LiveProcessor(chain, samplerate, channels, blocksize, control=control,
                                      chain_factory=chain_factory, programs=programs, preset_name=source.name,
                                      headroom=headroom_frames(source, samplerate, headroom))
            if processor.unswitchable:
                click.echo("not switchable by program change: " + "; ".join(
                    f"{name} ({why})" for name, why in processor.unswitchable.items()), err=True)
            if control is not None:
                control.recording = record is not None
                control.source = midi_in.get_message
                if learn is not None:
                    control.learn(learn)
                    click.echo(f"MIDI learn: move the controller for {learn}", err=True)
                click.echo(f"MIDI input: {midi_virtual or midi_port}", err=True)
            interactive = sys.stderr.isatty()
            report = (lambda line: click.echo("\r" + line, nl=False, err=True)) if interactive else \
                (lambda line: click.echo(line, err=True))
            try:
                stats = run_live(processor, input_device=devices[0], output_device=devices[1], blocksize=blocksize,
                                 duration=soak if soak is not None else duration, report=report,
                                 report_every=10.0 if soak is not None else 0.5)
            except KeyboardInterrupt:
                stats = processor.stats
    finally:
        if midi_in is not None:
            close_midi_port(midi_in)
    if record is not None:
        control.save_recording(record, samplerate)
        click.echo(f"recorded {len(control.recorded)} MIDI messages to {record}")
    if learn is not None:
        _save_learned(source, control, save_preset)
    e = processor.engine.stats if processor.engine else None
    click.echo(("\n" if interactive else "") + f"stopped: {stats.chunks} chunks, xruns {stats.xruns}, late blocks "
               f"{stats.late_blocks}, dropped frames {stats.dropped_frames}, preset switches {stats.switches}"
               + (f", reduced chunks {e.reduced_chunks}, dry chunks {e.deadline_dry_chunks}" if e else ""))
    if soak is not None:
        click.echo(soak_summary(processor, soak))


def _save_learned(source, control, path: Path) -> None:
    """Save ``source`` with the controllers learned in this session bound in its MIDI map."""
    from dreamfx.plugin.presets import save_preset
    if not control.learned:
        click.echo("MIDI learn: no controller was moved; nothing saved")
        return
    midi_map = source.midi_map()
    for number, name in control.learned:
        midi_map.bind(number, name)
    source.midi = midi_map
    save_preset(source, path)
    bindings = ", ".join(f"CC{number} -> {name}" for number, name in control.learned)
    click.echo(f"MIDI learn: {bindings}; saved to {path}")


@click.command()
def devices() -> None:
    """List audio devices and MIDI input ports."""
    from dreamfx.live.stream import device_listing
    from dreamfx.live.midi_ports import port_listing
    click.echo("audio devices:")
    click.echo(device_listing())
    click.echo("MIDI input ports:")
    click.echo(port_listing())
