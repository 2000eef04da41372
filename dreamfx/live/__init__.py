"""The live instrument: the compiled audio callback that only copies memory (native_audio), the worker that
dreams chunk by chunk under a deadline and switches presets (processor), the stream around it with its devices
and summaries (stream), and MIDI input ports through python-rtmidi (midi_ports).

May import: dreamfx.recipe, dreamfx.plugin and everything below.  Not render, validate or cli.
"""
