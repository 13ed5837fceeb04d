"""Measurements of the YOLOX models: GFLOPs as YOLOX counts them, and the timings of tools/benchmark_yolox.py.

GFLOPs. Ultralytics' profiler (``ultralytics.utils.torch_utils.get_flops``, the ultralytics-thop package) counts a
BatchNorm as 4 operations per element and no conv bias. The official YOLOX table was made with YOLOX's
``get_model_info``: thop 0.0.31 at a 64x64 input scaled to the test size, counting a BatchNorm as 2 operations per
element and the conv bias. :func:`yolox_gflops` reproduces that convention, so the architecture can be checked
against the table independently of the counting; the difference matters only for YOLOX-Nano, whose depthwise convs
make BatchNorm a larger share of its compute (Ultralytics: 1.11 GFLOPs at 416; YOLOX's convention: 1.08).

Timings. :func:`benchmark` times one training step (forward, loss, backward, optimizer step) of YOLOX-Nano and of
YOLOv8n on the same batch, and the batched SimOTA (:func:`~attnyolo.yolox.simota.simota_assign`) against the
per-image reference (:func:`~attnyolo.yolox.simota.simota_assign_per_image`) on the same inputs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import thop
import torch
from torch import nn
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel

from ..yolox.simota import simota_assign, simota_assign_per_image

_YOLOX_PROFILE_SIZE = 64  # YOLOX get_model_info profiles a 64x64 input and scales by (size / 64)^2


def _count_bn_yolox(m: nn.Module, x: tuple, y: torch.Tensor) -> None:
    """Count a BatchNorm as 2 operations per element (thop 0.0.31, which YOLOX's published numbers used)."""
    m.total_ops += 2 * x[0].numel()


def _count_conv_yolox(m: nn.Conv2d, x: tuple, y: torch.Tensor) -> None:
    """Count conv multiply-adds including the bias term (thop 0.0.31)."""
    per_output = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] + (m.bias is not None)
    m.total_ops += y.numel() * per_output


def yolox_gflops(model: nn.Module, imgsz: int) -> float:
    """GFLOPs counted the way the official YOLOX table counts them (see the module docstring).

    Args:
        model: A built model (for example ``DetectionModel("yolox-s.yaml")``).
        imgsz: Square test size (416 for Nano/Tiny, 640 otherwise in the YOLOX table).

    Returns:
        2 x multiply-adds / 1e9 at ``imgsz``.
    """
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, 3, _YOLOX_PROFILE_SIZE, _YOLOX_PROFILE_SIZE, device=next(model.parameters()).device)
        ops = {nn.BatchNorm2d: _count_bn_yolox, nn.Conv2d: _count_conv_yolox}
        macs = thop.profile(model, inputs=[x], custom_ops=ops, verbose=False)[0]
    finally:
        model.train(was_training)
    return macs * 2 / 1e9 * (imgsz / _YOLOX_PROFILE_SIZE) ** 2


def _median_time(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_batch(batch: int, imgsz: int, objects: int = 4, nc: int = 3, seed: int = 0) -> dict:
    """A fixed detection batch in Ultralytics' format: random images, ``objects`` random boxes per image."""
    gen = torch.Generator().manual_seed(seed)
    n = batch * objects
    wh = torch.rand(n, 2, generator=gen) * 0.4 + 0.1
    xy = torch.rand(n, 2, generator=gen) * (1 - wh) + wh / 2
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=gen),
        "batch_idx": torch.arange(batch).repeat_interleave(objects).float(),
        "cls": torch.randint(0, nc, (n, 1), generator=gen).float(),
        "bboxes": torch.cat((xy, wh), 1),
    }


def time_training_step(model_name: str, batch: dict, nc: int = 3, repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of one training step (forward, loss, backward, SGD step) of ``model_name`` on ``batch``."""
    model = DetectionModel(model_name, nc=nc, verbose=False).train()
    model.args = get_cfg()  # the hyperparameters Ultralytics' own criterion reads (as its trainer sets them)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        loss, _ = model.loss(batch)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()

    return _median_time(step, repeats, warmup)


def assignment_inputs(batch: int, imgsz: int, max_gt: int, nc: int = 80, seed: int = 0) -> dict:
    """Random SimOTA inputs at strides 8/16/32: predictions near the points, 1..``max_gt`` GTs per image."""
    gen = torch.Generator().manual_seed(seed)
    points, strides = [], []
    for s in (8, 16, 32):
        n = imgsz // s
        gy, gx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        points.append((torch.stack((gx, gy), -1).reshape(-1, 2).float() + 0.5) * s)
        strides.append(torch.full((n * n,), float(s)))
    points, strides = torch.cat(points), torch.cat(strides)
    size = (torch.rand(batch, len(points), 2, generator=gen) * 3 + 1) * strides[:, None]
    centre = points + (torch.rand(batch, len(points), 2, generator=gen) - 0.5) * strides[:, None]
    counts = torch.randint(1, max_gt + 1, (batch,), generator=gen)
    gt_wh = torch.rand(batch, max_gt, 2, generator=gen) * imgsz * 0.4 + 8
    gt_xy = torch.rand(batch, max_gt, 2, generator=gen) * (imgsz - gt_wh) + gt_wh / 2
    return {
        "pred_boxes": torch.cat((centre - size / 2, centre + size / 2), -1),
        "pred_scores": torch.rand(batch, len(points), nc, generator=gen) * 0.5,
        "points": points,
        "strides": strides,
        "gt_boxes": torch.cat((gt_xy - gt_wh / 2, gt_xy + gt_wh / 2), -1),
        "gt_labels": torch.randint(0, nc, (batch, max_gt), generator=gen),
        "gt_mask": torch.arange(max_gt)[None] < counts[:, None],
    }


def benchmark(
    imgsz: int = 320,
    batch: int = 8,
    assign_imgsz: int = 640,
    assign_batch: int = 16,
    max_gt: int = 30,
    repeats: int = 5,
) -> dict:
    """Time YOLOX-Nano vs YOLOv8n training steps and batched vs per-image SimOTA (see the module docstring).

    Args:
        imgsz: Input size of the training-step comparison.
        batch: Batch size of the training-step comparison.
        assign_imgsz: Input size whose points (strides 8, 16, 32) the assignment comparison uses.
        assign_batch: Images in the assignment comparison.
        max_gt: Most GTs per image in the assignment comparison (each image has 1..max_gt).
        repeats: Timed repetitions; medians are reported.

    Returns:
        Seconds per step/assignment, their ratios, the settings, and whether both assignments agree.
    """
    data = synthetic_batch(batch, imgsz)
    yolox = time_training_step("yolox-nano.yaml", data, repeats=repeats)
    yolov8 = time_training_step("yolov8n.yaml", data, repeats=repeats)
    inputs = assignment_inputs(assign_batch, assign_imgsz, max_gt)
    batched = _median_time(lambda: simota_assign(**inputs), repeats, 1)
    per_image = _median_time(lambda: simota_assign_per_image(**inputs), repeats, 1)
    a, b = simota_assign(**inputs), simota_assign_per_image(**inputs)
    agree = bool(torch.equal(a.fg_mask, b.fg_mask) and torch.equal(a.gt_index[a.fg_mask], b.gt_index[b.fg_mask]))
    return {
        "threads": torch.get_num_threads(),
        "step": {"imgsz": imgsz, "batch": batch, "yolox_nano_s": yolox, "yolov8n_s": yolov8, "ratio": yolox / yolov8},
        "assign": {
            "imgsz": assign_imgsz,
            "batch": assign_batch,
            "points": int(inputs["points"].shape[0]),
            "gts": int(inputs["gt_mask"].sum()),
            "batched_s": batched,
            "per_image_s": per_image,
            "speedup": per_image / batched,
            "identical": agree,
        },
    }


def format_benchmark(result: dict) -> str:
    """The benchmark result as the lines tools/benchmark_yolox.py prints."""
    s, a = result["step"], result["assign"]
    return "\n".join(
        (
            f"CPU threads: {result['threads']}",
            f"training step, batch {s['batch']} at {s['imgsz']}: YOLOX-Nano {s['yolox_nano_s'] * 1e3:.0f} ms, "
            f"YOLOv8n {s['yolov8n_s'] * 1e3:.0f} ms, ratio YOLOX-Nano / YOLOv8n = {s['ratio']:.2f}",
            f"SimOTA, {a['batch']} images x {a['points']} points, {a['gts']} GTs: "
            f"batched {a['batched_s'] * 1e3:.1f} ms, per-image loop {a['per_image_s'] * 1e3:.1f} ms, "
            f"speed-up {a['speedup']:.1f}x "
            f"(same assignment: {'yes' if a['identical'] else 'NO'})",
        )
    )
