"""Which Ultralytics releases the seam is proven on, and a behavioural self-check for the others.

CI runs the whole test suite at both ends of :data:`TESTED_RANGE`. Ultralytics releases every few days, and its
internals change, so outside that range ``import attnyolo`` does not refuse: it warns once and runs
:func:`self_check`, which builds tiny models through every patched path and compares channels and outputs with what
they must be. Only a failing check refuses, with a message naming the Ultralytics internal that changed.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable

import torch

from ..errors import UnsupportedUltralyticsError

LOGGER = logging.getLogger("attnyolo")

# The Ultralytics releases CI tests (.ci/run installs both ends); requirements.txt admits exactly this range.
TESTED_RANGE = ("8.4.180", "8.4.190")

_state = {"checked": None}  # the version a self-check already passed for, so it runs once per process


def version_tuple(version: str) -> tuple[int, ...]:
    """Turn '8.4.190' (or '8.4.190.dev0') into (8, 4, 190) for ordering."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def installed_version() -> str:
    """The installed Ultralytics version string."""
    import ultralytics

    return ultralytics.__version__


def in_tested_range(version: str) -> bool:
    """Whether ``version`` lies inside :data:`TESTED_RANGE` (both ends included)."""
    low, high = TESTED_RANGE
    return version_tuple(low) <= version_tuple(version) <= version_tuple(high)


# ------------------------------------------------------------------------------------------------- the self-check
# Tiny models that exercise every patched path: our layers' channel inference in the parser, the YOLOX head's
# multi-row wiring, depthwise conversion, CoordAtt fusion, YOLOX's criterion and get_flops on a Focus stem.
_LAYERS_CFG = {
    "nc": 2,
    "backbone": [
        [-1, 1, "Conv", [16, 3, 2]],
        [-1, 1, "CoordAtt", []],
        [-1, 1, "Conv", [32, 3, 2]],
        [-1, 1, "ELA", [None, "S"]],
        [-1, 1, "Conv", [48, 3, 2]],
        [-1, 1, "SEAttention", [48]],
        [-1, 1, "CBAMAttention", []],
        [-1, 1, "ECAAttention", []],
    ],
    "head": [[[1, 3, 7], 1, "Detect", ["nc"]]],
}
_LAYER_CHANNELS = {1: 16, 3: 32, 5: 48, 6: 48, 7: 48}  # row -> channels its attention layer must be built with
_YOLOX_CFG = {
    "nc": 2,
    "depthwise": True,
    "backbone": [
        [-1, 1, "Focus", [8, 3]],
        [-1, 1, "Conv", [16, 3, 2]],
        [-1, 1, "Conv", [24, 3, 2]],
        [-1, 1, "CoordAtt", [24]],
        [-1, 1, "Conv", [32, 3, 2]],
        [-1, 1, "Conv", [40, 3, 2]],
    ],
    "head": [[[3, 4, 5], 1, "YOLOXDetect", ["nc", 16]]],
}


_CLASSIC_CFG = {
    "nc": 2,
    "depth_multiple": 0.33,
    "width_multiple": 0.25,
    "anchors": [[10, 13, 16, 30], [30, 61, 62, 45], [116, 90, 156, 198]],
    "backbone": [
        [-1, 1, "Conv", [64, 6, 2, 2]],
        [-1, 1, "Conv", [128, 3, 2]],
        [-1, 1, "Conv", [256, 3, 2]],
        [-1, 1, "CA", [256]],
        [-1, 1, "Conv", [512, 3, 2]],
        [-1, 1, "Conv", [1024, 3, 2]],
    ],
    "head": [[[3, 4, 5], 1, "Detect", ["nc", "anchors"]]],
}


def _check_activation() -> None:
    from ultralytics.nn.tasks import Conv, DetectionModel

    before = Conv.default_act
    model = DetectionModel({**_LAYERS_CFG, "activation": "nn.LeakyReLU(0.1)"}, ch=3, verbose=False)
    acts = {repr(m.act) for m in model.modules() if isinstance(m, Conv)}
    if acts != {repr(torch.nn.LeakyReLU(0.1))}:
        raise AssertionError(f"with Conv.default_act set during parse_model, the convs got {sorted(acts)}")
    if Conv.default_act is not before:
        raise AssertionError("Conv.default_act was not restored after parse_model")


def _check_classic_head() -> None:
    from ultralytics.nn.tasks import DetectionModel

    from ..yolov5.head import YOLOv5Detect
    from ..yolov5.loss import YOLOv5Loss

    model = DetectionModel(dict(_CLASSIC_CFG), ch=3, verbose=False)
    head = model.model[-1]
    if not isinstance(head, YOLOv5Detect) or list(head.f) != [3, 4, 5]:
        raise AssertionError(f"the classic head is {type(head).__name__} reading rows {getattr(head, 'f', None)}")
    if head.stride.tolist() != [8.0, 16.0, 32.0] or head.anchors[0, 0].tolist() != [1.25, 1.625]:
        raise AssertionError(f"strides {head.stride.tolist()}, first anchor {head.anchors[0, 0].tolist()} (grid units)")
    if not isinstance(model.init_criterion(), YOLOv5Loss):
        raise AssertionError("a classic YOLOv5 model did not get YOLOv5Loss")
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, 64, 64))[0]
    if tuple(out.shape) != (1, 4 + 2, 2 * (8 * 8 + 4 * 4 + 2 * 2)):
        raise AssertionError(f"the classic head returned shape {tuple(out.shape)}, not (1, 6, 168)")


def _check_parser() -> None:
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(dict(_LAYERS_CFG), ch=3, verbose=False).eval()
    for row, channels in _LAYER_CHANNELS.items():
        got = getattr(model.model[row], "channels", None)
        if got != channels:
            raise AssertionError(
                f"row {row} ({type(model.model[row]).__name__}) built for {got} channels, not {channels}"
            )
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    out = out[0] if isinstance(out, (list, tuple)) else out
    if tuple(out.shape[:2]) != (1, 4 + 2):
        raise AssertionError(f"a 2-class detector returned shape {tuple(out.shape)}")


def _yolox_model():
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel(dict(_YOLOX_CFG), ch=3, verbose=False)


def _check_yolox_head() -> None:
    from ..yolox.blocks import DWSepConv
    from ..yolox.head import YOLOXDetect

    model = _yolox_model().eval()
    head = model.model[-1]
    if not isinstance(head, YOLOXDetect) or list(head.f) != [3, 4, 5]:
        raise AssertionError(f"the YOLOX head reads rows {getattr(head, 'f', None)}, not [3, 4, 5]")
    if not any(isinstance(m, DWSepConv) for m in model.modules()):
        raise AssertionError("`depthwise: true` made no conv depthwise-separable")
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))[0]
    if tuple(out.shape) != (1, 4 + 2, 8 * 8 + 4 * 4 + 2 * 2):
        raise AssertionError(f"the YOLOX head returned shape {tuple(out.shape)}, not (1, 6, 84)")


def _check_names() -> None:
    from ultralytics.nn.tasks import yaml_model_load

    d = yaml_model_load("yolov8n-CoordAtt.yaml")
    if d.get("attention") != "CoordAtt" or d.get("scale") != "n":
        raise AssertionError(f"yolov8n-CoordAtt.yaml loaded as attention={d.get('attention')}, scale={d.get('scale')}")


def _check_fuse() -> None:
    from ultralytics.nn.tasks import DetectionModel

    from ..layers.coord_attention import CoordAtt

    model = DetectionModel(dict(_LAYERS_CFG), ch=3, verbose=False).eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(x)[0]
        model.fuse(verbose=False)
        after = model(x)[0]
    if not all(m.fused for m in model.modules() if isinstance(m, CoordAtt)):
        raise AssertionError("BaseModel.fuse left CoordAtt's BatchNorm unfolded")
    if not torch.allclose(before, after, atol=1e-4, rtol=1e-4):
        raise AssertionError("fusing changed the model's outputs")


def _check_criterion() -> None:
    from ..yolox.loss import YOLOXLoss

    criterion = _yolox_model().init_criterion()
    if not isinstance(criterion, YOLOXLoss):
        raise AssertionError(f"a YOLOX model got {type(criterion).__name__}, not YOLOXLoss")


def _check_flops() -> None:
    from ultralytics.utils.torch_utils import get_flops

    if not get_flops(_yolox_model(), 64) > 0:
        raise AssertionError("get_flops reports 0 GFLOPs for a Focus-stem model")


def _check_trainer_files() -> None:
    from ultralytics.engine import trainer

    params = list(inspect.signature(trainer.strip_optimizer).parameters)
    if params[:3] != ["f", "s", "updates"]:
        raise AssertionError(f"strip_optimizer takes {params}, not (f, s, updates)")
    source = inspect.getsource(trainer.BaseTrainer.save_model)
    if "self.last" not in source or "self.best" not in source:
        raise AssertionError("BaseTrainer.save_model no longer writes to self.last / self.best")


def _check_safe_load() -> None:
    import fractions
    import tempfile
    from pathlib import Path

    from ultralytics.nn.tasks import DetectionModel, load_checkpoint

    from ..errors import CheckpointError

    with tempfile.TemporaryDirectory() as folder:
        good, bad = Path(folder) / "good.pt", Path(folder) / "bad.pt"
        model = DetectionModel(dict(_LAYERS_CFG), ch=3, verbose=False)
        torch.save({"model": model}, good)
        torch.save({"model": model, "x": fractions.Fraction(1, 2)}, bad)  # harmless, but never in a checkpoint
        loaded, _ = load_checkpoint(good)
        if type(loaded) is not DetectionModel:
            raise AssertionError(f"load_checkpoint returned {type(loaded).__name__} for a DetectionModel checkpoint")
        try:
            load_checkpoint(bad)
        except CheckpointError as error:
            if "fractions.Fraction" not in str(error):
                raise AssertionError(f"the refusal does not name the disallowed global: {error}") from None
        else:
            raise AssertionError("load_checkpoint unpickled a checkpoint that references fractions.Fraction")


def _check_validator_dataset() -> None:
    import tempfile
    from pathlib import Path

    import cv2
    import numpy as np
    from ultralytics.engine.validator import BaseValidator

    from .datasets import image_verdicts

    with tempfile.TemporaryDirectory() as folder:
        images, labels = Path(folder) / "images", Path(folder) / "labels"
        images.mkdir()
        labels.mkdir()
        rows = {"bad": "0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n", "dup": "1 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n"}
        for stem, text in rows.items():
            cv2.imwrite(str(images / f"{stem}.jpg"), np.full((32, 32, 3), 127, np.uint8))
            (labels / f"{stem}.txt").write_text(text)
        bad, dup = image_verdicts([images / "bad.jpg", images / "dup.jpg"], num_classes=3)
    if bad.kept or not dup.kept or dup.labels.shape != (1, 5) or dup.shape != (32, 32):
        raise AssertionError(
            f"verify_image_label kept={bad.kept} an image with class 5 of 3, and gave {dup.labels.shape} labels of "
            f"shape {dup.shape} for a duplicated row"
        )
    source = inspect.getsource(BaseValidator.__call__)
    finalize, write = source.find("self.finalize_metrics()"), source.find("predictions.json")
    if not 0 <= finalize < write or "self.jdict" not in source[write - 200 : write]:
        raise AssertionError("BaseValidator.__call__ writes predictions.json differently (from jdict, after finalize)")


def _check_coco_names() -> None:
    from .datasets import coco_class_names

    coco_class_names.cache_clear()
    names = coco_class_names()
    if (names[0], names[79]) != ("person", "toothbrush"):
        raise AssertionError(f"coco.yaml names start {names[0]!r} and end {names[79]!r}, not person ... toothbrush")


# name of the check -> (the Ultralytics internal it proves, check)
SELF_CHECKS: dict[str, tuple[str, Callable[[], None]]] = {
    "parser": ("ultralytics.nn.tasks.parse_model (channel inference for attention rows)", _check_parser),
    "yolox_head": ("ultralytics.nn.tasks.parse_model (multi-row YOLOX head, depthwise)", _check_yolox_head),
    "names": ("ultralytics.nn.tasks.check_yaml / yaml_model_load (model names)", _check_names),
    "activation": (
        "ultralytics.nn.tasks.parse_model (Conv.default_act is the activation of every Conv it builds)",
        _check_activation,
    ),
    "fuse": ("ultralytics.nn.tasks.BaseModel.fuse", _check_fuse),
    "criterion": ("ultralytics.nn.tasks.DetectionModel.init_criterion", _check_criterion),
    "classic_head": (
        "ultralytics.nn.tasks.parse_model / DetectionModel stride and bias_init (classic YOLOv5 head)",
        _check_classic_head,
    ),
    "flops": ("ultralytics.utils.torch_utils.get_flops", _check_flops),
    "trainer_files": ("ultralytics.engine.trainer.strip_optimizer / BaseTrainer.save_model", _check_trainer_files),
    "safe_load": ("ultralytics.nn.tasks.torch_safe_load (behind load_checkpoint)", _check_safe_load),
    "validator_dataset": (
        "ultralytics.data.utils.verify_image_label / BaseValidator.__call__ (the validator's images, predictions.json)",
        _check_validator_dataset,
    ),
    "coco_names": ("ultralytics/cfg/datasets/coco.yaml (COCO class names)", _check_coco_names),
}


def self_check() -> None:
    """Run every check of :data:`SELF_CHECKS`; raise naming the first Ultralytics internal that behaves differently.

    Raises:
        UnsupportedUltralyticsError: Naming the check, the internal, what was seen, and the fix.
    """
    for name, (internal, check) in SELF_CHECKS.items():
        try:
            check()
        except Exception as error:
            raise UnsupportedUltralyticsError(
                f"ultralytics {installed_version()} changed {internal}: the '{name}' self-check failed ({error}). "
                f"attnyolo is tested with ultralytics {TESTED_RANGE[0]} to {TESTED_RANGE[1]}. Fix: "
                f"pip install 'ultralytics>={TESTED_RANGE[0]},<={TESTED_RANGE[1]}'."
            ) from error


def check_installed() -> str:
    """Inside the tested range: nothing to do. Outside it: warn once and run :func:`self_check`.

    Returns:
        The installed version.

    Raises:
        UnsupportedUltralyticsError: The self-check failed.
    """
    version = installed_version()
    if in_tested_range(version) or _state["checked"] == version:
        return version
    LOGGER.warning(
        f"attnyolo: ultralytics {version} is outside the tested range {TESTED_RANGE[0]} to {TESTED_RANGE[1]}; "
        "running a self-check of the integration (tiny models through every patched path)."
    )
    self_check()
    _state["checked"] = version
    LOGGER.warning(f"attnyolo: self-check passed on ultralytics {version}.")
    return version
