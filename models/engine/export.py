"""Export through Ultralytics' exporters, with an onnxruntime-vs-PyTorch check for ONNX (tools/export.py)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ultralytics.engine.exporter import export_formats
from ultralytics.utils.checks import check_imgsz

from ..integration.checkpoints import load_model
from ..utils.atomic import replace_atomically


def verify_onnx(pt_path: str | Path, onnx_path: str | Path, sizes=((640, 640),), rtol: float = 1e-3) -> dict:
    """Run the ONNX file with onnxruntime and the checkpoint with PyTorch on the same random inputs.

    Args:
        pt_path: The checkpoint that was exported.
        onnx_path: The exported ONNX file.
        sizes: (height, width) inputs to compare; sizes other than the export size need ``dynamic=True``.
        rtol: Allowed max |difference| relative to the largest output magnitude.

    Returns:
        ``{"ok", "max_abs_diff", "max_abs_output", "inputs"}``.
    """
    import onnxruntime as ort  # optional: only verify=True needs it (requirements-dev.txt installs it)

    model = load_model(pt_path).model.float().fuse(verbose=False).eval()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst, scale = 0.0, 0.0
    gen = torch.Generator().manual_seed(0)
    for h, w in sizes:
        x = torch.rand(1, 3, h, w, generator=gen)
        with torch.no_grad():
            expected = model(x)
            expected = (expected[0] if isinstance(expected, (list, tuple)) else expected).numpy()
        got = session.run(None, {name: x.numpy()})[0]
        if got.shape != expected.shape:
            return {"ok": False, "max_abs_diff": float("inf"), "max_abs_output": 0.0, "inputs": f"{h}x{w}"}
        worst = max(worst, float(np.abs(got - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
    inputs = ", ".join(f"{h}x{w}" for h, w in sizes)
    return {"ok": worst <= rtol * max(scale, 1.0), "max_abs_diff": worst, "max_abs_output": scale, "inputs": inputs}


def verification_sizes(imgsz, stride, dynamic: bool = False) -> list[tuple[int, int]]:
    """The (height, width) inputs an ONNX export is checked at: its export size, and a second size when dynamic.

    The export size is the one Ultralytics' exporter uses for ``imgsz``: one number or a list of one or two, rounded
    up to a multiple of the model's largest stride (``ultralytics.utils.checks.check_imgsz``, as the exporter calls
    it). A static ONNX file accepts only that size.

    Args:
        imgsz: The ``imgsz`` export setting: ``640``, ``[640]`` or ``[480, 640]``.
        stride: The model's strides (a tensor) or its largest stride.
        dynamic: Whether the export has dynamic axes; then one stride taller and one stride narrower is checked too.

    Examples:
        >>> verification_sizes([640], 32)
        [(640, 640)]
        >>> verification_sizes([100, 64], 32, dynamic=True)
        [(128, 64), (160, 32)]
    """
    step = int(stride.max() if isinstance(stride, torch.Tensor) else stride)
    h, w = check_imgsz(imgsz, stride=step, min_dim=2)
    return [(h, w)] + ([(h + step, max(step, w - step))] if dynamic else [])


def _exported_name(stem: str, format: str) -> str:
    """The name Ultralytics' exporter gives the export of ``<stem>.pt`` in ``format`` (its ``export_formats`` table)."""
    table = export_formats()
    suffixes = dict(zip(table["Argument"], table["Suffix"]))
    return f"{stem}{suffixes.get(format, '.' + format)}"


def export_atomically(yolo: Any, model: Path, format: str, **kw: Any) -> str:
    """``yolo.export(format=..., **kw)`` written into a staging folder beside ``model``, then renamed into place.

    Ultralytics' exporters write straight to ``<model stem>.<format>`` beside the checkpoint (the path comes from the
    model's ``pt_path``); a full disk then leaves a truncated file where a complete one may have been. Here the model's
    ``pt_path`` points into a staging folder in the same folder for the export, so the file (or folder, for formats
    that write one) appears at its real name only once complete, by a rename; an earlier export stays until then.

    Returns:
        The path of the export at its final place.

    Raises:
        OSError: The export failed to write; the error names the final file, and the staging folder is removed.
    """
    folder = model.resolve().parent
    final = folder / _exported_name(model.stem, format)
    staging = Path(tempfile.mkdtemp(prefix=f".{model.stem}.export-", dir=folder))
    previous = getattr(yolo.model, "pt_path", None)
    yolo.model.pt_path = str(staging / model.name)
    try:
        produced = Path(yolo.export(format=format, **kw))
        target = folder / produced.name
        if produced.is_dir():
            old = staging / f"{produced.name}.previous"
            if target.exists():
                target.rename(old)  # the earlier export is put back if the new one cannot take its place
            try:
                produced.rename(target)
            except OSError:
                if old.exists():
                    old.rename(target)
                raise
        else:
            replace_atomically(produced, target)
        return str(target)
    except OSError as error:
        if error.filename is None or staging in Path(str(error.filename)).parents:
            error.filename = str(final)  # the staging name means nothing to the user
        raise
    finally:
        yolo.model.pt_path = previous
        shutil.rmtree(staging, ignore_errors=True)


def export_model(model: str | Path | None = None, format: str = "onnx", verify: bool = True, **kw):
    """Export a checkpoint; for ONNX also verify the file against PyTorch.

    Args:
        model: Checkpoint path.
        format: Any Ultralytics export format.
        verify: ONNX only: compare onnxruntime with PyTorch (export size, and a second size when ``dynamic``).
        **kw: Ultralytics export settings.

    Returns:
        ``(exported path, check dict or None)``.

    Raises:
        OSError: The export could not be written (e.g. a full disk), naming the file; nothing of it is left behind.
    """
    if model is None:
        raise ValueError("model= is required, e.g. model=runs/train/exp/weights/best.pt")
    yolo = load_model(model)
    path = export_atomically(yolo, Path(str(model)), format, **kw)
    if format != "onnx" or not verify or kw.get("nms"):
        # With nms=True the graph ends in NMS and returns final boxes, not the raw head output compared below.
        return path, None
    sizes = verification_sizes(kw.get("imgsz", 640), yolo.model.stride, bool(kw.get("dynamic")))
    return path, verify_onnx(model, path, sizes)
