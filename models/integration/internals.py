"""Every Ultralytics internal AttnYOLO touches, and why; :func:`register` applies them.

This module and its siblings in ``attnyolo.integration`` are the only code that relies on Ultralytics' internals.
Everything else in the package uses public Ultralytics API (``YOLO``, trainers, validators, predictors, callbacks)
or calls the functions here. :data:`PATCHES` lists what is wrapped, :func:`added_names` what is added to the parser's
namespace, and :data:`READS` the internal facts relied on without patching anything: reads of Ultralytics' data
structures happen in functions of this package, and subclasses elsewhere (trainers, a validator, a head) rely on the
documented behaviour of the class they extend. Each patch and read names the self-check that proves it
(:data:`attnyolo.integration.plugins.SELF_CHECKS`); outside the tested Ultralytics range,
:mod:`attnyolo.integration.version` runs them all before anything builds.
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
from .plugins import HEADS


class Patch(NamedTuple):
    """One wrapped Ultralytics attribute: ``owner.attribute = wrap(original)``."""

    owner: str  # dotted path of the module or class that holds the attribute
    attribute: str
    wrap: Callable
    why: str
    check: str  # the key of the self-check that proves the wrapped behaviour (attnyolo.integration.self_checks)


class Read(NamedTuple):
    """One Ultralytics internal relied on without patching it."""

    fact: str  # what is relied on
    where: str  # the module that relies on it, and why
    check: str | None  # the key of the self-check that proves it; None: nothing can change silently (see `where`)


PATCHES: tuple[Patch, ...] = (
    Patch(
        "ultralytics.nn.tasks",
        "parse_model",
        parser.wrap_parse_model,
        "unknown modules get their YAML args verbatim; our rows need their input channels (two-pass build), the "
        "`attention:` key, the multi-row YOLOX and classic YOLOv5 heads, the forks' layer names and `depthwise:`",
        "parser",
    ),
    Patch(
        "ultralytics.nn.tasks",
        "check_yaml",
        names.wrap_check_yaml,
        "bare model names must find cfg/ and the generated <family><scale>-<kind>.yaml variants",
        "names",
    ),
    Patch(
        "ultralytics.nn.tasks",
        "yaml_model_load",
        names.wrap_yaml_model_load,
        "a model YAML that exists at the path given is read as given; Ultralytics renames yolov5s6.yaml-style names "
        "to its own -p6 models first (DetectionModel, and the trainer's get_model, call it here)",
        "names",
    ),
    Patch(
        "ultralytics.engine.model",
        "yaml_model_load",
        names.wrap_yaml_model_load,
        "the same for YOLO(path.yaml), whose module imported the function by name",
        "names",
    ),
    Patch("ultralytics.nn.tasks.BaseModel", "fuse", model_methods.wrap_fuse, "fold CoordAtt's BatchNorm", "fuse"),
    Patch(
        "ultralytics.nn.tasks.DetectionModel",
        "init_criterion",
        model_methods.wrap_init_criterion,
        "a YOLOX head trains with the YOLOX loss, a classic YOLOv5 head with YOLOv5's loss",
        "criterion",
    ),
    Patch(
        "ultralytics.utils.torch_utils",
        "get_flops",
        model_methods.wrap_get_flops,
        "the probe image needs the model's input channels, not the Focus stem's 12",
        "flops",
    ),
    Patch(
        "ultralytics.nn.tasks",
        "torch_safe_load",
        checkpoints.wrap_torch_safe_load,
        "it unpickles checkpoints in full, running any code a file names; read with weights_only=True and an "
        "allowlist of what Ultralytics and AttnYOLO checkpoints contain unless the user trusts the file (classic "
        "YOLOv5 files, which it refuses, are mapped by their foreign format)",
        "safe_load",
    ),
    Patch(
        "ultralytics.engine.trainer",
        "strip_optimizer",
        checkpoints.wrap_strip_optimizer,
        "final_eval saves over last.pt/best.pt; write through a temporary file",
        "trainer_files",
    ),
)


def added_names() -> dict[str, type]:
    """Names added to ultralytics.nn.tasks, where parse_model resolves a YAML row's module name.

    The attention layers, the heads the families registered (:data:`attnyolo.integration.plugins.HEADS`) and the
    parser's channel probe; read when :func:`register` runs, after ``import attnyolo`` imported every family.
    """
    return {
        **layer_classes(),
        **{name: head.cls for name, head in HEADS.items()},
        parser.PROBE_NAME: parser.ChannelProbe,
    }


# Internal facts relied on without patching. Reads of Ultralytics data structures go through functions of this
# package (integration/); the others are subclasses using what the class they extend does, named in `where`.
READS: tuple[Read, ...] = (
    Read(
        "parse_model gives unknown modules their input channels as output channels; reads d['scale'], d['scales']",
        "integration/parser.py: the probe pass and the width scaling of channel arguments",
        "parser",
    ),
    Read("ultralytics.utils.ops.make_divisible", "integration/parser.py: Conv's channel rounding", "parser"),
    Read(
        "parse_model resolves a row's module name in the globals of ultralytics.nn.tasks, and builds its sets of "
        "channel-scaled and repeated modules (base_modules, repeat_modules) from those globals on every call",
        "integration/parser.py _head_blocks: Bottleneck/BottleneckCSP rows of classic YOLOv5 models build "
        "YOLOv5's blocks (yolov5/blocks.py) while one parse runs",
        "classic_blocks",
    ),
    Read(
        "yaml_model_load's dict: the YAML, `scale` from guess_model_scale(path), `yaml_file` the path",
        "integration/names.py wrap_yaml_model_load: the same dict for a file read as given",
        "names",
    ),
    Read(
        "BaseModel's forward routes each layer's input by its `f` attribute and keeps the outputs of the rows listed "
        "in `save`, as parse_model returns them",
        "integration/parser.py _rewire_head: the YOLOX and classic heads, built with from: -1, read their real rows",
        "yolox_head",
    ),
    Read(
        "parse_model builds every Conv with the class attribute Conv.default_act, which it sets from d['activation'] "
        "(with eval) and restores before returning",
        "integration/activation.py: the parsed activation is set there and the key removed, so nothing is evaluated",
        "activation",
    ),
    Read(
        "ultralytics.utils.USER_CONFIG_DIR",
        "integration/names.py: where generated variant YAMLs are written",
        "names",
    ),
    Read(
        "ultralytics.utils.downloads.GITHUB_ASSETS_NAMES",
        "integration/names.py: stock weights stay downloadable",
        "names",
    ),
    Read(
        "BaseTrainer.save_model writes to BaseTrainer.last / .best",
        "integration/checkpoints/writing.py: atomic writes",
        "trainer_files",
    ),
    Read(
        "ultralytics.nn.modules.Detect has a class attribute `anchors`; BaseModel._apply converts the head's "
        "stride/anchors; DetectionModel calls head.bias_init() right after computing the strides",
        "yolov5/head.py (a Detect subclass): the anchors buffer, registered in _buffers because the class attribute "
        "takes the name, and its conversion to grid units once the strides are known",
        "classic_head",
    ),
    Read(
        "BaseTrainer._setup_train calls set_class_weights after building the dataloaders and before the EMA copy",
        "engine/detection_trainer.py (a DetectionTrainer subclass): AutoAnchor for classic YOLOv5 models runs in "
        "set_class_weights, so the EMA gets the fitted anchors",
        "trainer_loop",
    ),
    Read(
        "a trainer's train_loader.dataset.labels: per image a dict with shape (h, w) and bboxes (normalised xywh)",
        "integration/datasets.py training_labels: the label sizes classic YOLOv5's AutoAnchor fits anchors to",
        "dataset_layout",
    ),
    Read(
        "BaseTrainer.save_metrics writes results.csv (BaseTrainer.csv) with `epoch` = epoch index + 1 first",
        "integration/training.py drop_unsaved_epochs, called by engine/detection_trainer.py resume_training (a "
        "subclass): epochs logged after the checkpoint are dropped when resuming",
        "results_csv",
    ),
    Read(
        "BaseTrainer._do_train runs the on_train_batch_start callbacks before its warm-up (none with warmup_epochs=0) "
        "and calls optimizer_step every `accumulate` batches; optimizer_step steps `scaler` (documented attributes)",
        "engine/recipes.py (a trainer subclass): YOLOX's per-iteration learning rate, one step per batch, no clipping",
        "trainer_loop",
    ),
    Read(
        "ultralytics.data.augment.RandomPerspective accepts scale=(min, max), and the trainer's config check does",
        "yolox/recipe.py: YOLOX's mosaic scale ranges (0.1, 2) and (0.5, 1.5)",
        "random_perspective",
    ),
    Read(
        "ultralytics.data.utils.verify_image_label(im_file, lb_file, prefix, keypoint, num_cls, nkpt, ndim, "
        "single_cls) is the dataset's verdict on each image: None for a dropped image, else its deduplicated labels; "
        "img2label_paths gives each image's label file",
        "integration/datasets.py: the evaluator's ground truth covers the images the validator evaluates",
        "validator_dataset",
    ),
    Read(
        "a validator's dataloader.dataset.im_files are the images it evaluated",
        "integration/datasets.py evaluated_images: scoring is restricted to them",
        "dataset_layout",
    ),
    Read(
        "BaseValidator.__call__ runs finalize_metrics, then writes predictions.json in place if jdict is non-empty",
        "evaluation/validator.py (a DetectionValidator subclass): it takes jdict in finalize_metrics; the file is "
        "written atomically instead",
        "validator_dataset",
    ),
    Read(
        "a predictor's dataset.frames: the current video's frame count (LoadImagesAndVideos), or each camera/stream's "
        "(LoadStreams, inf for a live source)",
        "integration/datasets.py predictor_frame_counts, for engine/predict.py: progress, and a live stream whose "
        "loader ends has dropped",
        "stream_frames",
    ),
    Read(
        "BasePredictor.save_predicted_images writes self.plotted_img: images with cv2.imwrite to save_path.with_suffix"
        "('.jpg'), videos through the cv2.VideoWriter self.vid_writer[save_path] (save_path as .avi or .mp4; frames "
        "of save_frames as <stem>_frames/<stem>_<frame>.jpg); stream_inference releases the writers before returning",
        "engine/predict.py (a DetectionPredictor subclass): annotated images written atomically, every video's frame "
        "count checked once written",
        "predictor_writes",
    ),
    Read(
        "Ultralytics' plots are written with matplotlib's Figure.savefig and PIL's Image.save; plot_images runs in a "
        "thread of @threaded, which Python names after the function",
        "integration/plots.py atomic_plots, used by engine/detection_trainer.py (a DetectionTrainer subclass): the "
        "run's plots written atomically, a plot thread's failure one warning line",
        "plot_files",
    ),
    Read(
        "ultralytics/cfg/datasets/coco.yaml lists the 80 COCO class names under 'names'",
        "integration/datasets.py: class names of checkpoints converted from official YOLOX COCO weights",
        "coco_names",
    ),
    Read(
        "AutoBackend runs .pt models channels-last on x86 CPUs with oneDNN (Linux, Windows)",
        "integration/internals.py predictor_channels_last: benchmarks time the memory order predict/val use; a "
        "change alters timings only, never a result, so there is no self-check",
        None,
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
    for name, cls in added_names().items():
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
    return all(vars(tasks).get(n) is c for n, c in added_names().items()) and all(
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
