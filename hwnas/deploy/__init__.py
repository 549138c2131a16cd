"""Deployment: the chosen subnet as .nnp and ONNX files, each checked by its own runtime."""
from __future__ import annotations

from hwnas.deploy._export import (FORMATS, RECORD as EXPORT_RECORD, TOLERANCE, Format,
                                  check_models, export_checked, export_nnp, export_onnx,
                                  file_digest, inference_graph, mismatched_models, pixels,
                                  read_record, run_nnp, weights_digest, write_record)
from hwnas.deploy._onnx import OPSET, nnp_to_onnx, onnx_compatible, run_onnx
from hwnas.hwcost import export_module_nnp, save_nnp

__all__ = ["EXPORT_RECORD", "FORMATS", "Format", "OPSET", "TOLERANCE", "check_models",
           "export_checked", "export_module_nnp", "export_nnp", "export_onnx", "file_digest",
           "inference_graph", "mismatched_models", "nnp_to_onnx", "onnx_compatible", "pixels",
           "read_record", "run_nnp", "run_onnx", "save_nnp", "weights_digest", "write_record"]
