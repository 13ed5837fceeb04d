"""Export a trained checkpoint with Ultralytics' exporters; ONNX exports are checked against PyTorch.

Usage:
    attnyolo export model=runs/train/exp/weights/best.pt format=onnx
    attnyolo export model=best.pt format=onnx dynamic=True imgsz=640 verify=True
    attnyolo export model=best.pt format=torchscript
Keys: model, format (default onnx), verify (ONNX only: compare onnxruntime with PyTorch, default True), plus every
Ultralytics export setting (imgsz, dynamic, half, simplify, opset, device, ...).
trust_checkpoint=True reads .pt files you vouch for with full unpickling (docs/security.md).
"""

from ..engine.export import export_model
from ..utils.cli import TRUST_KEY, apply_trust_checkpoint, check_run_settings, parse_kv_args, ultralytics_keys

DEFAULTS = {"model": None, "format": "onnx", "verify": True, TRUST_KEY: False}


def main(argv):
    """Export the model and, for ONNX, report the largest difference between onnxruntime and PyTorch."""
    args = parse_kv_args(argv, DEFAULTS, __doc__, passthrough=ultralytics_keys())
    apply_trust_checkpoint(args)
    check_run_settings(args, "export")
    path, check = export_model(**args)
    print(f"exported: {path}")
    if check is not None:
        print(
            f"onnxruntime vs PyTorch on {check['inputs']} inputs: max |difference| {check['max_abs_diff']:.2e} "
            f"(outputs up to {check['max_abs_output']:.1f}) -> {'OK' if check['ok'] else 'MISMATCH'}"
        )
        return 0 if check["ok"] else 1
    return 0
