"""The effect a host plays: DreamEffect (pedalboard's calling convention), Chain (dreams, pedalboard's native
plugins and hosted LV2/VST3 plugins, streamed exactly as rendered offline), presets as plain data (TOML parsed,
checked, saved; their MIDI map), and MidiControl (MIDI messages applied to an effect chunk by chunk; Automation
from a file).

Inside: lv2 (the lilv binding) and hosted (VST3) import nothing of the others; presets imports nothing of effect,
chain or midi; effect builds on presets; chain and midi on effect.
May import: dreamfx.export (opening a backend), dreamfx.engine and everything below.
"""
