"""The effect a host plays: DreamEffect (pedalboard's calling convention), Chain (dreams and pedalboard's native
plugins, streamed exactly as rendered offline), presets as plain data (TOML parsed, checked, saved; their MIDI
map), and MidiControl (MIDI messages applied to an effect chunk by chunk; Automation from a file).

Inside: presets imports nothing of effect, chain or midi; effect builds on presets; chain and midi on effect.
May import: dreamfx.export (opening a backend), dreamfx.engine and everything below.
"""
