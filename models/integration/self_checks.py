"""The seam's behavioural self-checks of the Ultralytics internals AttnYOLO patches or reads.

They are registered in :data:`attnyolo.integration.plugins.SELF_CHECKS`, beside those the families register.

Each entry of :data:`attnyolo.integration.internals.PATCHES` and :data:`~attnyolo.integration.internals.READS` names
the check that proves it; :mod:`attnyolo.integration.version` runs them all outside the tested Ultralytics range. A
check builds tiny models or data in a temporary folder and compares what Ultralytics does with what it must do;
where a fact is about the order of steps inside one of Ultralytics' methods, it reads that method's source.
The families' own heads, keys and losses are checked by the checks they register
(:func:`attnyolo.integration.plugins.register_self_check`, in ``yolov5/`` and ``yolox/registration.py``).
"""

from __future__ import annotations

import inspect
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import torch
from ultralytics.cfg import check_cfg, get_cfg
from ultralytics.data import build_yolo_dataset
from ultralytics.data.augment import RandomPerspective
from ultralytics.data.loaders import LoadImagesAndVideos, LoadStreams
from ultralytics.engine import model as engine_model
from ultralytics.engine import trainer
from ultralytics.engine.trainer import BaseTrainer
from ultralytics.nn import tasks
from ultralytics.nn.tasks import Conv, DetectionModel, load_checkpoint
from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER
from ultralytics.utils import USER_CONFIG_DIR, YAML, plotting
from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES
from ultralytics.utils.instance import Instances
from ultralytics.utils.metrics import plot_pr_curve
from ultralytics.utils.ops import make_divisible

from ..errors import CheckpointError
from ..layers.coord_attention import CoordAtt
from ..layers.registry import one_kind_per_layer
from . import plots
from .datasets import coco_class_names, evaluated_images, image_verdicts, predictor_frame_counts, training_labels
from .plugins import register_self_check
from .training import drop_unsaved_epochs

# A tiny model that exercises the seam's patched paths: our layers' channel inference in the parser and CoordAtt
# fusion. The families' heads, keys and losses have their own checks and models (yolov5/ and yolox/registration.py).


def _layers_cfg() -> tuple[dict, dict[int, int]]:
    """A 2-class detector with one row per layer class of the table of kinds, and row -> channels it must get.

    The rows alternate between the spellings the parser must read: an explicit channel count (``[16]``) and none
    (``[]``, or ``[None, T]`` for a layer with arguments). Stages of 16, 32 and 48 channels feed Detect.
    """
    first_of_class = one_kind_per_layer()
    stages, rows, channels_of, outputs = (16, 32, 48), [], {}, []
    for stage, width in enumerate(stages):
        rows.append([-1, 1, "Conv", [width, 3, 2]])
        placed = first_of_class[stage:] if stage == len(stages) - 1 else first_of_class[stage : stage + 1]
        for i, kind in enumerate(placed):
            given = None if (stage + i) % 2 else width
            args = [given, *kind.args] if (kind.args or given) else []
            channels_of[len(rows)] = width
            rows.append([-1, 1, kind.yaml_name, args])
        outputs.append(len(rows) - 1)
    return {"nc": 2, "backbone": rows, "head": [[outputs, 1, "Detect", ["nc"]]]}, channels_of


_LAYERS_CFG, _LAYER_CHANNELS = _layers_cfg()


def _check_activation() -> None:
    before = Conv.default_act
    model = DetectionModel({**_LAYERS_CFG, "activation": "nn.LeakyReLU(0.1)"}, ch=3, verbose=False)
    acts = {repr(m.act) for m in model.modules() if isinstance(m, Conv)}
    if acts != {repr(torch.nn.LeakyReLU(0.1))}:
        raise AssertionError(f"with Conv.default_act set during parse_model, the convs got {sorted(acts)}")
    if Conv.default_act is not before:
        raise AssertionError("Conv.default_act was not restored after parse_model")


def _check_parser() -> None:
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
    if (make_divisible(20, 8), make_divisible(16.0, 8)) != (24, 16):
        raise AssertionError("make_divisible no longer rounds channel counts up to a multiple of the divisor")


def _check_names() -> None:
    yaml_model_load = tasks.yaml_model_load  # the wrapped one: read after the seam patched it
    d = yaml_model_load("yolov8n-CoordAtt.yaml")
    if d.get("attention") != "CoordAtt" or d.get("scale") != "n":
        raise AssertionError(f"yolov8n-CoordAtt.yaml loaded as attention={d.get('attention')}, scale={d.get('scale')}")
    with tempfile.TemporaryDirectory() as tmp:
        for stem in ("yolov5s6", "yolov8m"):  # a name Ultralytics renames (to yolov5s-p6), and one it does not
            path = Path(tmp) / f"{stem}.yaml"
            YAML.save(path, _LAYERS_CFG)
            loads = [yaml_model_load, engine_model.yaml_model_load]  # both wrapped: YOLO(...) calls the second
            if stem != "yolov5s6":  # Ultralytics' own reads other files the same way; this one it renames
                loads.append(getattr(yaml_model_load, "_attnyolo_original", yaml_model_load))
            for load in loads:
                got = load(str(path))
                if got != {**_LAYERS_CFG, "scale": stem[6], "yaml_file": str(path)}:
                    raise AssertionError(f"yaml_model_load({path}) gave {got}, not the file with scale and yaml_file")
    if "yolov8n.pt" not in GITHUB_ASSETS_NAMES or not Path(USER_CONFIG_DIR).is_dir():
        raise AssertionError("GITHUB_ASSETS_NAMES lacks yolov8n.pt, or USER_CONFIG_DIR is not a folder")


def _check_fuse() -> None:
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


def _check_trainer_files() -> None:
    params = list(inspect.signature(trainer.strip_optimizer).parameters)
    if params[:3] != ["f", "s", "updates"]:
        raise AssertionError(f"strip_optimizer takes {params}, not (f, s, updates)")
    source = inspect.getsource(trainer.BaseTrainer.save_model)
    if "self.last" not in source or "self.best" not in source:
        raise AssertionError("BaseTrainer.save_model no longer writes to self.last / self.best")


def _check_safe_load() -> None:
    import fractions  # its decimal module costs at import; only this check, outside the tested range, needs it

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
    from ultralytics.engine.validator import BaseValidator  # not otherwise loaded by `import attnyolo`

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
    coco_class_names.cache_clear()
    names = coco_class_names()
    if (names[0], names[79]) != ("person", "toothbrush"):
        raise AssertionError(f"coco.yaml names start {names[0]!r} and end {names[79]!r}, not person ... toothbrush")


def _write_image_dataset(folder: Path, rows: dict[str, tuple[tuple[int, int], str]]) -> Path:
    """Images (h, w, grey) and their YOLO label files under ``folder/images`` and ``folder/labels``."""
    images, labels = folder / "images", folder / "labels"
    images.mkdir()
    labels.mkdir()
    for stem, ((h, w), text) in rows.items():
        cv2.imwrite(str(images / f"{stem}.jpg"), np.full((h, w, 3), 127, np.uint8))
        (labels / f"{stem}.txt").write_text(text)
    return images


def _check_dataset_layout() -> None:
    with tempfile.TemporaryDirectory() as folder:
        rows = {"a": ((32, 48), "1 0.5 0.5 0.25 0.5\n"), "b": ((40, 24), "0 0.25 0.75 0.5 0.25\n")}
        images = _write_image_dataset(Path(folder), rows)
        level = ULTRALYTICS_LOGGER.level
        ULTRALYTICS_LOGGER.setLevel("ERROR")  # the dataset scan logs its progress
        try:
            cfg = get_cfg(overrides={"imgsz": 64, "cache": False})
            dataset = build_yolo_dataset(cfg, str(images), 2, {"names": {0: "x", 1: "y"}, "channels": 3}, mode="val")
        finally:
            ULTRALYTICS_LOGGER.setLevel(level)
        files = evaluated_images(SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset)))
        labels = training_labels(SimpleNamespace(train_loader=SimpleNamespace(dataset=dataset)))
    if [f.name for f in files] != ["a.jpg", "b.jpg"]:
        raise AssertionError(f"dataset.im_files lists {files}, not the split's images a.jpg, b.jpg in order")
    expected = [((32, 48), [[0.5, 0.5, 0.25, 0.5]]), ((40, 24), [[0.25, 0.75, 0.5, 0.25]])]
    got = [(label["shape"], label["bboxes"].tolist()) for label in labels]
    if len(got) != 2 or any(g[0] != e[0] or not np.allclose(g[1], e[1]) for g, e in zip(got, expected)):
        raise AssertionError(f"dataset.labels gave (shape, bboxes) {got}, not (h, w) and normalised xywh {expected}")


def _check_stream_frames() -> None:
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "three.avi"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 32))
        for i in range(3):
            writer.write(np.full((32, 32, 3), 60 * i, np.uint8))
        writer.release()
        loader = LoadImagesAndVideos(str(video))
        counts = predictor_frame_counts(SimpleNamespace(dataset=loader))
        loader.cap.release()
    if counts != 3:
        raise AssertionError(f"a 3-frame video's loader reports frames={counts!r}")
    source = "".join(inspect.getsource(LoadStreams.__init__).split())  # no live source here: its code is read
    if "self.frames[i]=" not in source or 'float("inf")' not in source or "CAP_PROP_FRAME_COUNT" not in source:
        raise AssertionError("LoadStreams no longer records each stream's frame count (inf for a live source)")


def _check_results_csv() -> None:
    with tempfile.TemporaryDirectory() as folder:
        trainer = SimpleNamespace(csv=Path(folder) / "results.csv", epoch=0, train_time_start=time.time())
        for epoch in range(3):
            trainer.epoch = epoch
            BaseTrainer.save_metrics(trainer, {"metrics/mAP50(B)": 0.5})
        first = [line.split(",")[0] for line in trainer.csv.read_text().splitlines()]
        removed = drop_unsaved_epochs(trainer.csv, {"epoch": 1})  # a checkpoint of epochs 0 and 1
        kept = [line.split(",")[0] for line in trainer.csv.read_text().splitlines()]
    if first != ["epoch", "1", "2", "3"] or (removed, kept) != (1, ["epoch", "1", "2"]):
        raise AssertionError(f"results.csv's first column reads {first}, not epoch, then each epoch's index + 1")
    if "self.csv =" not in inspect.getsource(BaseTrainer.__init__):
        raise AssertionError("BaseTrainer no longer sets self.csv, the results.csv path")


def _check_trainer_loop() -> None:
    setup = inspect.getsource(BaseTrainer._setup_train)
    loaders = max(setup.find("self._build_train_pipeline()"), setup.find("self.train_loader ="))
    weights, ema = setup.find("self.set_class_weights()"), setup.find("ModelEMA(")
    if not 0 <= loaders < weights < ema or "self.scaler =" not in setup:
        raise AssertionError("_setup_train no longer builds the dataloaders, then set_class_weights, then the EMA")
    loop = inspect.getsource(BaseTrainer._do_train)
    callback = loop.find('self.run_callbacks("on_train_batch_start")')
    warmup, step = loop.find("self.accumulate = "), loop.find("self.optimizer_step()")
    if not 0 <= callback < warmup < step or "self.accumulate" not in loop[max(0, step - 200) : step]:
        raise AssertionError("_do_train no longer runs on_train_batch_start, warm-up, then accumulate-gated steps")
    stub = SimpleNamespace(args=SimpleNamespace(warmup_epochs=0), epochs=10)
    if BaseTrainer._get_warmup_iterations(stub, 10) != 0:
        raise AssertionError("warmup_epochs=0 still gives warm-up iterations")


def _check_random_perspective() -> None:
    check_cfg({"scale": (0.5, 1.5)})  # the trainer's argument check accepts a (min, max) range
    transform = RandomPerspective(degrees=0.0, translate=0.0, scale=(2.0, 2.0), shear=0.0, perspective=0.0)
    boxes = np.array([[24.0, 28.0, 40.0, 36.0]], np.float32)  # xyxy in a 64 x 64 image, centred on (32, 32)
    segments = np.zeros((0, 1000, 2), np.float32)
    labels = {
        "img": np.zeros((64, 64, 3), np.uint8),
        "cls": np.zeros((1, 1), np.float32),
        "instances": Instances(boxes, segments=segments, bbox_format="xyxy", normalized=False),
    }
    out = transform(labels)["instances"]
    out.convert_bbox("xyxy")
    if not np.allclose(out.bboxes, [[16.0, 24.0, 48.0, 40.0]], atol=0.5):
        raise AssertionError(f"RandomPerspective(scale=(2, 2)) mapped a 16x8 box to {out.bboxes.tolist()}, not 32x16")


def _check_plot_files() -> None:
    written, original = [], plots.write_bytes_atomic
    plots.write_bytes_atomic = lambda path, data, durable=True: written.append(Path(path).name) or original(path, data)
    try:
        with tempfile.TemporaryDirectory() as folder, plots.atomic_plots(folder):
            px = np.linspace(0, 1, 1000)
            plot_pr_curve(px, [np.ones(1000)], np.ones((1, 10)), Path(folder) / "pr.png")  # plt_settings + savefig
            made = (Path(folder) / "pr.png").stat().st_size
    finally:
        plots.write_bytes_atomic = original
    if written != ["pr.png"] or not made:
        raise AssertionError(f"plot_pr_curve wrote {written} through Figure.savefig, not pr.png ({made} bytes)")
    source = inspect.getsource(plotting)  # plot_images needs a font; its source is read instead of running it
    if "@threaded\ndef plot_images(" not in source or "annotator.im.save(fname)" not in source:
        raise AssertionError("plot_images is no longer a @threaded function saving with PIL (annotator.im.save)")
    thread = plotting.threaded(lambda: None)()
    thread.join()
    if "threading.Thread(target=func" not in inspect.getsource(plotting.threaded) or "(<lambda>)" not in thread.name:
        raise AssertionError(f"@threaded runs its function in thread {thread.name!r}, not one named after it")


def _check_predictor_writes() -> None:
    from ultralytics.engine.predictor import BasePredictor  # not otherwise loaded by `import attnyolo`

    image = np.full((32, 48, 3), 127, np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        stub = SimpleNamespace(
            plotted_img=image,
            save_dir=Path(folder),
            vid_writer={},
            args=SimpleNamespace(vid_stride=1, save_frames=False),
            dataset=SimpleNamespace(mode="image", fps=5),
        )
        BasePredictor.save_predicted_images(stub, Path(folder) / "a.png")
        stub.dataset.mode = "video"
        for frame in range(3):
            BasePredictor.save_predicted_images(stub, Path(folder) / "v.mp4", frame)
        writer = stub.vid_writer.get(Path(folder) / "v.mp4")
        if writer is not None:
            writer.release()
        videos = [p for p in Path(folder).iterdir() if p.stem == "v"]
        cap = cv2.VideoCapture(str(videos[0])) if len(videos) == 1 else None
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap is not None else 0
        if cap is not None:
            cap.release()
        image_written = (Path(folder) / "a.jpg").is_file()
    if not image_written or writer is None or [v.suffix for v in videos] not in ([".avi"], [".mp4"]) or frames != 3:
        raise AssertionError(
            f"save_predicted_images wrote a.jpg: {image_written}, vid_writer[save_path]: {writer is not None}, videos "
            f"{[v.name for v in videos]} of {frames} frames (expected v.avi or v.mp4 of 3)"
        )
    source = inspect.getsource(BasePredictor.save_predicted_images)
    if 'f"{save_path.stem}_frames"' not in source or 'f"{frames_path}/{save_path.stem}_{frame}.jpg"' not in source:
        raise AssertionError("save_predicted_images names the frames of save_frames differently")
    if "v.release()" not in inspect.getsource(BasePredictor.stream_inference):
        raise AssertionError("stream_inference no longer releases its video writers itself")


# name of the check -> (the Ultralytics internal it proves, check); the families register their own beside these
_SEAM_CHECKS: dict[str, tuple[str, Callable[[], None]]] = {
    "parser": ("ultralytics.nn.tasks.parse_model (channel inference for attention rows)", _check_parser),
    "names": ("ultralytics.nn.tasks.check_yaml / yaml_model_load (model names)", _check_names),
    "activation": (
        "ultralytics.nn.tasks.parse_model (Conv.default_act is the activation of every Conv it builds)",
        _check_activation,
    ),
    "fuse": ("ultralytics.nn.tasks.BaseModel.fuse", _check_fuse),
    "trainer_files": ("ultralytics.engine.trainer.strip_optimizer / BaseTrainer.save_model", _check_trainer_files),
    "safe_load": ("ultralytics.nn.tasks.torch_safe_load (behind load_checkpoint)", _check_safe_load),
    "validator_dataset": (
        "ultralytics.data.utils.verify_image_label / BaseValidator.__call__ (the validator's images, predictions.json)",
        _check_validator_dataset,
    ),
    "coco_names": ("ultralytics/cfg/datasets/coco.yaml (COCO class names)", _check_coco_names),
    "dataset_layout": (
        "ultralytics.data.YOLODataset (dataset.im_files, dataset.labels with shape and normalised bboxes)",
        _check_dataset_layout,
    ),
    "stream_frames": ("ultralytics.data.loaders LoadImagesAndVideos / LoadStreams frames", _check_stream_frames),
    "results_csv": ("ultralytics.engine.trainer.BaseTrainer.save_metrics (results.csv columns)", _check_results_csv),
    "trainer_loop": (
        "ultralytics.engine.trainer.BaseTrainer._setup_train / _do_train (order of set_class_weights, EMA, batch "
        "callback, warm-up, optimizer_step)",
        _check_trainer_loop,
    ),
    "plot_files": (
        "ultralytics.utils.plotting / metrics plots (matplotlib's Figure.savefig, PIL's Image.save, @threaded)",
        _check_plot_files,
    ),
    "predictor_writes": (
        "ultralytics.engine.predictor.BasePredictor.save_predicted_images / stream_inference (annotated output)",
        _check_predictor_writes,
    ),
    "random_perspective": (
        "ultralytics.data.augment.RandomPerspective (scale as a (min, max) range)",
        _check_random_perspective,
    ),
}
for _name, (_internal, _check) in _SEAM_CHECKS.items():
    register_self_check(_name, _internal, _check)
