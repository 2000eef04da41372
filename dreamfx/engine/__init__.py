"""Running dreams: the backends that run dream iterations (torch autograd with ensembles and transforms; an
exported step on TorchScript or onnxruntime), the streaming engine (windowed STFT -> chunks dreamt -> overlap-add,
fixed latency, any block size, equal to offline), and Griffin-Lim reconstruction of its magnitudes.

May import: dreamfx.dream, dreamfx.nets, dreamfx.dsp, dreamfx.files, dreamfx.errors.  Not dreamfx.export: a
safetensors model's step graph is exported by a function the layer above passes in (``exporter``).
"""
