"""``dreamfx validate``: a plugin validator's battery for presets, models and exports (battery runs it; framework
holds what a check is; audio_checks, parameter_checks and damaged_files are the checks), and the measures of a
dream it and the tests use (metrics: retention, SNR, smoothness under input noise).

May import: dreamfx.render, dreamfx.live, dreamfx.recipe and everything below.  Not cli.
"""
