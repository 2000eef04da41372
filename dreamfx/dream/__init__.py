"""What a dream is, for one window: objectives (layer energy, a channel, a class or tag, blends), random
transforms, the gradient-ascent iterations (ascent), and one iteration written as a plain forward graph that
TorchScript and ONNX can hold (step, with the exported step's interface).

May import: dreamfx.nets, dreamfx.dsp, dreamfx.errors.
"""
