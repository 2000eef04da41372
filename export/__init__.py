"""dreamfx.export (installed from the top-level export/): classifiers and dream steps to TorchScript and ONNX,
metadata inside (exporters), and opening the backend a dream runs on, exporting its step when asked (open).

Layer: above dreamfx.engine, below dreamfx.plugin.
"""

from dreamfx.export.exporters import (FORMATS, WHATS, Classifier, export_metadata, export_model, onnx_classifier,
                                      onnx_dream_step, traced_dream_step)

__all__ = ["FORMATS", "WHATS", "Classifier", "export_metadata", "export_model", "onnx_classifier",
           "onnx_dream_step", "traced_dream_step"]
