"""Every Ultralytics internal AttnYOLO touches, and why; :func:`register` applies them.

This module and its siblings in ``attnyolo.integration`` are the only code that relies on Ultralytics' internals.
Everything else in the package uses public Ultralytics API (``YOLO``, trainers, validators, predictors, callbacks)
or calls the functions here. :data:`PATCHES` lists what is wrapped, :data:`NAMES` what is added to the parser's
namespace, and :data:`READS` the internal facts other modules depend on without patching anything. Outside the tested
Ultralytics range, :mod:`attnyolo.integration.version` checks all of it by behaviour before anything builds.
"""

from __future__ import annotations

import importlib
import platform
from collections.abc import Callable
from typing import NamedTuple

import torch

from ..errors import UnsupportedUltralyticsError
from ..layers.registry import layer_classes
from . import checkpoints, model_methods, names, parser, version


class Patch(NamedTuple):
    """One wrapped Ultralytics attribute: ``owner.attribute = wrap(original)``."""

    owner: str  # dotted path of the module or class that holds the attribute
    attribute: str
    wrap: Callable
    why: str


PATCHES: tuple[Patch, ...] = (
    Patch(
        "ultralytics.nn.tasks",
        "parse_model",
        parser.wrap_parse_model,
        "unknown modules get their YAML args verbatim; our rows need their input channels (two-pass build), the "
        "`attention:` key, the multi-row YOLOX and classic YOLOv5 heads, the forks' layer names and `depthwise:`",
    ),
    Patch(
        "ultralytics.nn.tasks",
        "check_yaml",
        names.wrap_check_yaml,
        "bare model names must find cfg/ and the generated <family><scale>-<kind>.yaml variants",
    ),
    Patch("ultralytics.nn.tasks.BaseModel", "fuse", model_methods.wrap_fuse, "fold CoordAtt's BatchNorm"),
    Patch(
        "ultralytics.nn.tasks.DetectionModel",
        "init_criterion",
        model_methods.wrap_init_criterion,
        "a YOLOX head trains with the YOLOX loss, a classic YOLOv5 head with YOLOv5's loss",
    ),
    Patch(
        "ultralytics.utils.torch_utils",
        "get_flops",
        model_methods.wrap_get_flops,
        "the probe image needs the model's input channels, not the Focus stem's 12",
    ),
    Patch(
        "ultralytics.nn.tasks",
        "torch_safe_load",
        checkpoints.wrap_torch_safe_load,
        "it unpickles checkpoints in full, running any code a file names; read with weights_only=True and an "
        "allowlist of what Ultralytics and AttnYOLO checkpoints contain unless the user trusts the file (classic "
        "YOLOv5 files, which it refuses, are mapped by their foreign format)",
    ),
    Patch(
        "ultralytics.engine.trainer",
        "strip_optimizer",
        checkpoints.wrap_strip_optimizer,
        "final_eval saves over last.pt/best.pt; write through a temporary file",
    ),
)

# Names added to ultralytics.nn.tasks, where parse_model resolves a YAML row's module name.
NAMES: dict[str, type] = {**layer_classes(), **parser.HEADS, parser.PROBE_NAME: parser.ChannelProbe}

# Internal facts relied on without patching: (fact, where it is used and why).
READS: tuple[tuple[str, str], ...] = (
    (
        "parse_model gives unknown modules their input channels as output channels; reads d['scale'], d['scales']",
        "integration/parser.py: the probe pass and the width scaling of channel arguments",
    ),
    ("ultralytics.utils.ops.make_divisible", "integration/parser.py: Conv's channel rounding"),
    (
        "parse_model builds every Conv with the class attribute Conv.default_act, which it sets from d['activation'] "
        "(with eval) and restores before returning",
        "integration/parser.py: the parsed activation is set there and the key removed, so nothing is evaluated",
    ),
    ("ultralytics.utils.USER_CONFIG_DIR", "integration/names.py: where generated variant YAMLs are written"),
    ("ultralytics.utils.downloads.GITHUB_ASSETS_NAMES", "integration/names.py: stock weights stay downloadable"),
    ("BaseTrainer.save_model writes to BaseTrainer.last / .best", "integration/checkpoints.py: atomic writes"),
    (
        "ultralytics.nn.modules.Detect has a class attribute `anchors`; BaseModel._apply converts the head's "
        "stride/anchors; DetectionModel calls head.bias_init() right after computing the strides",
        "yolov5/head.py: the anchors buffer, and its conversion to grid units once the strides are known",
    ),
    (
        "DetectionTrainer.set_class_weights runs after the dataloaders are built and before the EMA copy",
        "engine/trainer.py: AutoAnchor for classic YOLOv5 models runs there, so the EMA gets the fitted anchors",
    ),
    (
        "ultralytics.data.utils.verify_image_label(im_file, lb_file, prefix, keypoint, num_cls, nkpt, ndim, "
        "single_cls) is the dataset's verdict on each image: None for a dropped image, else its deduplicated labels",
        "integration/datasets.py: the evaluator's ground truth covers the images the validator evaluates",
    ),
    (
        "a validator's dataloader.dataset.im_files are the images it evaluated",
        "integration/datasets.py evaluated_images: scoring is restricted to them",
    ),
    (
        "BaseValidator.__call__ runs finalize_metrics, then writes predictions.json in place if jdict is non-empty",
        "evaluation/validator.py: PycocotoolsDetectionValidator takes jdict in finalize_metrics; the file is written "
        "atomically instead",
    ),
    (
        "a predictor's dataset.frames lists each camera/stream's frame count, inf for a live source (LoadStreams)",
        "engine/predict.py: a live stream whose loader ends has dropped; said in one line with the frames written",
    ),
    (
        "ultralytics/cfg/datasets/coco.yaml lists the 80 COCO class names under 'names'",
        "integration/datasets.py: class names of checkpoints converted from official YOLOX COCO weights",
    ),
    (
        "AutoBackend runs .pt models channels-last on x86 CPUs with oneDNN (Linux, Windows)",
        "integration/internals.py predictor_channels_last: benchmarks time the memory order predict/val use",
    ),
)


def _resolve(dotted: str):
    """Import ``a.b.C`` as module ``a.b`` attribute ``C`` (or the module itself)."""
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError:
        module, _, attr = dotted.rpartition(".")
        return getattr(importlib.import_module(module), attr)


def register() -> None:
    """Make AttnYOLO's layers usable by name in Ultralytics model YAMLs. Idempotent; run by ``import attnyolo``.

    Outside the tested Ultralytics range this first applies the patches, then runs the behavioural self-check of
    :mod:`attnyolo.integration.version` (once per process), which raises if an internal changed.

    Raises:
        UnsupportedUltralyticsError: An internal is missing or behaves differently; the message names it.
        RuntimeError: If a layer name is already taken in Ultralytics by a different class.

    Examples:
        >>> import attnyolo  # registers
        >>> from ultralytics import YOLO
        >>> model = YOLO("yolov5s_Coordinate_attention.yaml")
    """
    tasks = importlib.import_module("ultralytics.nn.tasks")
    for name, cls in NAMES.items():
        existing = vars(tasks).get(name)
        if existing is not None and existing is not cls:
            raise RuntimeError(
                f"Cannot register {name}: ultralytics.nn.tasks already defines {existing!r}. Rename the AttnYOLO layer."
            )
        setattr(tasks, name, cls)
    for patch in PATCHES:
        try:
            owner = _resolve(patch.owner)
            original = getattr(owner, patch.attribute)
        except (ImportError, AttributeError) as error:
            raise UnsupportedUltralyticsError(
                f"ultralytics {version.installed_version()} has no {patch.owner}.{patch.attribute}, which attnyolo "
                f"wraps ({patch.why}). Fix: pip install 'ultralytics>={version.TESTED_RANGE[0]},"
                f"<={version.TESTED_RANGE[1]}'."
            ) from error
        if not hasattr(original, "_attnyolo_original"):
            setattr(owner, patch.attribute, patch.wrap(original))
    version.check_installed()


def is_registered() -> bool:
    """Whether :func:`register` has run in this process."""
    tasks = importlib.import_module("ultralytics.nn.tasks")
    return all(vars(tasks).get(n) is c for n, c in NAMES.items()) and all(
        hasattr(getattr(_resolve(p.owner), p.attribute), "_attnyolo_original") for p in PATCHES
    )


def predictor_channels_last(device: torch.device | str = "cpu") -> bool:
    """Whether Ultralytics' predictor and validator run a PyTorch model channels-last on ``device``.

    Ultralytics 8.4's AutoBackend converts ``.pt`` models to channels-last on x86 CPUs with oneDNN, on Linux and
    Windows; on CUDA it keeps them contiguous. Benchmarks default to the same memory order, so they time the layers
    the way ``predict``/``val`` run them.
    """
    return (
        torch.device(device).type == "cpu"
        and platform.machine() in {"AMD64", "x86_64"}
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and platform.system() in {"Linux", "Windows"}
    )
