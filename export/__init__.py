"""dreamfx.export (installed from the top-level export/): classifiers and dream steps to TorchScript and ONNX,
metadata inside (exporters), and a network's dream step as the graph a backend runs, made on demand (graphs).

Layer: above dreamfx.engine, below dreamfx.plugin.
"""

from dreamfx.export.exporters import (FORMATS, WHATS, Classifier, export_metadata, export_model, onnx_classifier,
                                      onnx_dream_step, traced_dream_step)

__all__ = ["FORMATS", "WHATS", "Classifier", "export_metadata", "export_model", "onnx_classifier",
           "onnx_dream_step", "traced_dream_step"]
