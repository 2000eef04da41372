"""dreamfx.export: classifiers and dream steps to TorchScript and ONNX (installed from the top-level export/)."""

from dreamfx.export.exporters import (FORMATS, WHATS, Classifier, export_metadata, export_model, onnx_classifier,
                                      onnx_dream_step, traced_dream_step)

__all__ = ["FORMATS", "WHATS", "Classifier", "export_metadata", "export_model", "onnx_classifier",
           "onnx_dream_step", "traced_dream_step"]
