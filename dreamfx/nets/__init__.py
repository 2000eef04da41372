"""The networks: DreamNet (frontend + convolutional blocks + head) built from its metadata, the shipped models
by name (models), and the smooth surrogate gradients of ReLU and max pooling the dream ascends (surrogate).

May import: dreamfx.dsp, dreamfx.files, dreamfx.errors.
"""
