"""Precision of the CUDA and automatic-mixed-precision paths against float32, one model at a time.

The first step of the GPU check (:mod:`attnyolo.analysis.gpu_check`): forward and backward of a model in float32 and
under ``torch.autocast`` float16 and bfloat16, plus the float16 model (``model.half()``) that Ultralytics' validator
and predictor run with ``half=True``; outputs, losses and gradients are compared with float32 within
:data:`TOLERANCES`, and the layers' inference fast path with their module path.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ultralytics.cfg import get_cfg

from ..layers.registry import kind_names
from .summary import open_model, zoo_names


@dataclass(frozen=True)
class Tolerance:
    """How far a reduced-precision run may stray from float32, as relative L2 errors and a gradient cosine.

    Attributes:
        output: Largest ``||y - y32|| / ||y32||`` of the decoded boxes and, separately, of the class scores.
        loss: Largest ``|L - L32| / |L32|`` of the training loss (None: not compared).
        grad: Largest ``||g - g32|| / ||g32||`` of the whole flattened gradient (None: not compared).
        cosine: Smallest cosine similarity of the flattened gradient with float32's (None: not compared).
    """

    output: float
    loss: float | None = None
    grad: float | None = None
    cosine: float | None = None


# Why these numbers: a float16 rounding is at most u = 2^-11 (4.9e-4) relative, a bfloat16 one 2^-8 (3.9e-3), 8x more
# (IEEE 754 binary16; bfloat16 keeps 8 significand bits). Autocast keeps reductions, norms, softmax and the losses in
# float32 (torch.amp's op lists), so errors come from the rounded convolution inputs and weights and grow roughly
# with the square root of the depth (about 60-100 convolutions here): sqrt(100) * u ~ 5e-3 for float16 and 4e-2 for
# bfloat16. The bounds are ~4x that, and keep bfloat16's 8x ratio to float16. Gradients stray further than outputs:
# the backward pass doubles the depth, and the discrete label assignment (TAL's top-k, SimOTA's dynamic k, YOLOv5's
# anchor matching) can flip a near-tie, which moves a few anchors' gradients by O(1); the cosine keeps the direction
# honest where the norm would let one flip dominate. The ``half`` row is the float16 *model* (weights and every
# activation float16, no float32 islands), as Ultralytics' validator runs it under AMP: outputs only, float16 bounds.
TOLERANCES: dict[str, Tolerance] = {
    "float16": Tolerance(output=2e-2, loss=2e-2, grad=0.15, cosine=0.99),
    "bfloat16": Tolerance(output=0.15, loss=0.15, grad=0.6, cosine=0.9),
    "half": Tolerance(output=2e-2),  # inference only: no loss or gradient
}
FAST_PATH_TOLERANCE = 1e-4  # eval fast path vs module path in float32: the same equations, other summation orders
LOSS_SCALE = 2.0**10  # what GradScaler's first steps use, order of magnitude: keeps float16 gradients from underflowing

S_SCALE_FAMILY = "yolov8"


def precision_models(scales: str = "n", kinds: Sequence[str] | None = None) -> list[str]:
    """Every family x every kind (and each stock model) at ``scales``, YOLOX-Nano for n, plus YOLOv8 at the s scale."""
    wanted = set(kind_names() if kinds is None else kinds) | {""}
    names = [n for n in zoo_names(scales=scales, yolox=False) if kind_of(n) in wanted]
    names += [n for n in zoo_names(families=(S_SCALE_FAMILY,), scales="s", yolox=False) if kind_of(n) in wanted]
    names += [f"yolox-nano{'-' + k if k else ''}.yaml" for k in ("", *kind_names()) if k in wanted]
    return names


def kind_of(name: str) -> str:
    """The attention kind in a model name, '' for a stock model."""
    stem = Path(name).stem
    return next((k for k in sorted(kind_names(), key=len, reverse=True) if stem.endswith(f"-{k}")), "")


def synthetic_batch(batch: int, imgsz: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random images and two labelled boxes per image (class, normalised xywh), as Ultralytics' loaders collate them."""
    gen = torch.Generator().manual_seed(seed)
    n = 2 * batch
    xy = torch.rand(n, 2, generator=gen) * 0.5 + 0.25
    wh = torch.rand(n, 2, generator=gen) * 0.3 + 0.1
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=gen).to(device),
        "batch_idx": torch.arange(batch).repeat_interleave(2).float().to(device),
        "cls": torch.randint(0, 3, (n, 1), generator=gen).float().to(device),
        "bboxes": torch.cat((xy, wh), 1).to(device),
    }


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """``||value - reference|| / ||reference||`` in float64 (0 when both are zero)."""
    value, reference = value.double(), reference.double()
    norm = reference.norm().item()
    diff = (value - reference).norm().item()
    return diff / norm if norm > 0 else diff


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two flattened tensors in float64."""
    return torch.nn.functional.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0).item()


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """TensorFloat-32 off for cuBLAS and cuDNN inside the block.

    On Ampere and later GPUs float32 convolutions default to TF32, whose 10-bit significand would make the float32
    reference as coarse as float16.
    """
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _decoded(model: torch.nn.Module, img: torch.Tensor) -> torch.Tensor:
    """The eval-mode decoded predictions (B, 4 + nc, N) in float32, whatever the family's output tuple holds."""
    out = model(img)
    out = out[0] if isinstance(out, (tuple, list)) else out
    return out.float()


def trainable_model(name: str, device: torch.device) -> torch.nn.Module:
    """``name`` built in float32 on ``device``, with Ultralytics' default loss gains (what a trainer would attach)."""
    model = open_model(name, "models").model.float().to(device)
    model.args = get_cfg()  # the trainer's settings namespace; the loss reads its gains (box, cls, dfl) from it
    return model


def _gradient(model: torch.nn.Module, batch: dict, dtype: torch.dtype | None) -> tuple[float, torch.Tensor]:
    """Training loss (summed terms) and the flattened gradient, under autocast to ``dtype`` (None: float32)."""
    model.zero_grad(set_to_none=True)
    with torch.autocast(batch["img"].device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = model.loss(batch)[0].sum()
    (loss.float() * LOSS_SCALE).backward()
    grads = [p.grad.flatten() if p.grad is not None else torch.zeros_like(p).flatten() for p in model.parameters()]
    return loss.item(), torch.cat(grads).float() / LOSS_SCALE


def check_precision(
    name: str, device: torch.device, imgsz: int, batch: int, dtypes: Sequence[str], check_grads: bool = True
) -> dict[str, Any]:
    """Compare one model's outputs, loss and gradients under reduced precision with float32 on ``device``.

    Args:
        name: Model YAML name.
        device: Where it runs.
        imgsz: Input size.
        batch: Images per batch (two labelled boxes each).
        dtypes: Names of :data:`TOLERANCES` to compare.

    Returns:
        ``{"model", "ok", "fast_path_error", "<dtype>": {"box_error", "score_error", "loss_error", "grad_error",
        "grad_cosine", "finite", "ok"}}``; ``failures`` lists each bound exceeded.
    """
    torch.manual_seed(0)
    model = trainable_model(name, device)
    data = synthetic_batch(batch, imgsz, device)
    row: dict[str, Any] = {"model": name, "failures": []}
    # Every eval-mode output first: a train-mode forward moves the BatchNorm running statistics that eval reads.
    model.eval()
    with exact_float32():
        with torch.no_grad():
            ref = _decoded(model, data["img"])  # the layers' inference fast path
        with torch.enable_grad():  # the same weights through the module path (autograd on)
            module_path = _decoded(model, data["img"]).detach()
    row["fast_path_error"] = relative_error(ref, module_path)
    if not row["fast_path_error"] <= FAST_PATH_TOLERANCE:
        row["failures"].append(f"fast path vs module path {row['fast_path_error']:.2e} > {FAST_PATH_TOLERANCE}")
    outputs = {}
    for dtype_name in dtypes:
        if dtype_name == "half":
            half = copy.deepcopy(model).half()
            with torch.no_grad():
                outputs[dtype_name] = _decoded(half, data["img"].half())
            del half
        else:
            with torch.no_grad(), torch.autocast(device.type, dtype=getattr(torch, dtype_name)):
                outputs[dtype_name] = _decoded(model, data["img"])
    model.train()
    with exact_float32():
        ref_loss, ref_grad = _gradient(model, data, None)
    for dtype_name in dtypes:
        tol = TOLERANCES[dtype_name]
        entry: dict[str, Any] = {}
        out = outputs[dtype_name]
        if dtype_name != "half":
            loss, grad = _gradient(model, data, getattr(torch, dtype_name))
            entry["loss_error"] = abs(loss - ref_loss) / abs(ref_loss)
            entry["grad_error"] = relative_error(grad, ref_grad)
            entry["grad_cosine"] = cosine(grad, ref_grad)
            entry["finite"] = bool(math.isfinite(loss))
            entry["grad_finite"] = bool(torch.isfinite(grad).all())
        entry["box_error"] = relative_error(out[:, :4], ref[:, :4])
        entry["score_error"] = relative_error(out[:, 4:], ref[:, 4:])
        entry["finite"] = entry.get("finite", True) and bool(torch.isfinite(out).all())
        failures = [] if entry["finite"] else ["non-finite values"]
        for key, bound in (("box_error", tol.output), ("score_error", tol.output), ("loss_error", tol.loss)):
            if key in entry and not entry[key] <= bound:
                failures.append(f"{key} {entry[key]:.2e} > {bound}")
        grad_failures = [] if entry.get("grad_finite", True) else ["non-finite gradient"]
        if "grad_error" in entry and not entry["grad_error"] <= tol.grad:
            grad_failures.append(f"grad_error {entry['grad_error']:.2e} > {tol.grad}")
        if "grad_cosine" in entry and not entry["grad_cosine"] >= tol.cosine:
            grad_failures.append(f"grad_cosine {entry['grad_cosine']:.4f} < {tol.cosine}")
        if check_grads:
            failures += grad_failures
        else:  # recorded, not failed: see run_gpu_check (the CPU dry run's gradients at 64 px)
            entry["grad_outside_bounds"] = grad_failures
        entry["ok"] = not failures
        row[dtype_name] = entry
        row["failures"] += [f"{dtype_name}: {f}" for f in failures]
    row["ok"] = not row["failures"]
    return row


def precision_dtypes(device: torch.device) -> tuple[list[str], dict[str, str]]:
    """The precisions compared on ``device``, and those skipped with the reason."""
    dtypes, skipped = ["float16", "bfloat16", "half"], {}
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        dtypes.remove("bfloat16")
        skipped["bfloat16"] = f"{torch.cuda.get_device_name(device)} has no bfloat16 support"
    return dtypes, skipped
