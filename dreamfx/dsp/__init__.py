"""Signal processing, no networks: the STFT and its overlap-add inverse (spectral), ring buffers, the networks'
input frontends (linear, mel, mel-in-the-loop), and fixed-size block framing for pedalboard-style calls.

May import: numpy, torch, librosa; dreamfx.errors.  Nothing of dreamfx above it.
"""
