"""Score detections on a dataset split with the papers' protocols: COCO (pycocotools) and PASCAL VOC (devkit).

:func:`validate_model` runs a checkpoint with Ultralytics' validator and scores its ``predictions.json``;
:func:`evaluate_predictions` and :func:`score_predictions_file` score detections some other tool wrote. The ground
truth comes from :mod:`attnyolo.evaluation.ground_truth`, the report from :mod:`attnyolo.evaluation.report`.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ultralytics.models.yolo.detect import DetectionValidator

from ..integration.checkpoints import check_checkpoint_file, load_model
from ..integration.datasets import evaluated_images
from ..utils.atomic import atomic_path, write_json_atomic
from ..utils.paths import runs_dir
from .coco import evaluate_coco, load_results, read_json
from .ground_truth import SplitGroundTruth, load_split, voc_box
from .report import COCO_PROTOCOL, DEFAULT_NAME, VOC_PROTOCOL, save_run
from .voc import evaluate_voc

# Ultralytics' val defaults to conf=0.25, which truncates the precision/recall curve; AP needs every detection.
DEFAULT_CONF = 0.001


Predictions = str | Path | Sequence[Mapping[str, Any]]


def _without_dropped_images(gt: SplitGroundTruth, predictions: Predictions) -> tuple[Predictions, str | None]:
    """The predictions minus those on images the evaluation drops (see :attr:`SplitGroundTruth.dropped`).

    Ultralytics' validator never runs the model on a dropped image; detections from elsewhere on one are not scored.

    Returns:
        The predictions (a list when something was read from a file) and the source name for messages.
    """
    source = str(predictions) if isinstance(predictions, (str, Path)) else None
    dropped = {entry["id"] for entry in gt.dropped}
    if not dropped:
        return predictions, source
    if source is not None:
        predictions = read_json(source)
    if not isinstance(predictions, (list, tuple)):
        return predictions, source  # load_results names the problem
    kept = [p for p in predictions if not (isinstance(p, Mapping) and p.get("image_id") in dropped)]
    if len(kept) < len(predictions):
        warnings.warn(
            f"{len(predictions) - len(kept)} detections on the {len(dropped)} dropped image(s) are not scored, as "
            "Ultralytics' validator never evaluates those images.",
            UserWarning,
            stacklevel=3,
        )
    return kept, source


def _score(gt: SplitGroundTruth, predictions: Predictions) -> dict[str, Any]:
    """Run COCOeval and, where annotated, the VOC devkit on checked predictions."""
    predictions, source = _without_dropped_images(gt, predictions)
    detections = load_results(predictions, gt.coco, source=source)  # one-line errors for unknown ids, bad entries
    coco = evaluate_coco(gt.coco, detections)
    coco.pop("summary")  # the same numbers as text; metrics.json keeps the numbers
    metrics: dict[str, Any] = {"coco": coco}
    protocols = [COCO_PROTOCOL]
    if gt.voc is not None:
        class_of = {c: i for i, c in enumerate(gt.category_of_class) if c is not None}
        voc_detections = [
            {
                "image_id": d["image_id"],
                "class_id": class_of[d["category_id"]],
                "score": d["score"],
                "bbox": voc_box(d["bbox"]),
            }
            for d in detections
            if d["category_id"] in class_of
        ]
        metrics["voc"] = evaluate_voc(gt.voc, voc_detections, gt.names)
        protocols.append(VOC_PROTOCOL)
    metrics["protocol"] = "; ".join(protocols)
    metrics["ground_truth"] = {"coco": gt.coco_source, **({"voc": gt.voc_source} if gt.voc is not None else {})}
    metrics["data"] = str(gt.data)
    metrics["split"] = gt.split
    metrics["images"] = len(gt.images)
    # Images of the split Ultralytics' validator does not evaluate, with its reason; scored in neither ground truth
    # nor predictions, so the AP is that of the images that were evaluated.
    metrics["dropped_images"] = [{"image": d["image"], "reason": d["reason"]} for d in gt.dropped]
    return metrics


def evaluate_predictions(data: str | Path, predictions: Predictions, split: str = "val") -> dict[str, Any]:
    """Score COCO-format detections on a split of a dataset with pycocotools and, if annotated, the VOC devkit.

    Args:
        data (str | Path): An Ultralytics data YAML (``path``, ``train``, ``val``, ``names``; optionally
            ``coco_annotations`` and ``voc_annotations``, see the module docstring).
        predictions (str | Path | Sequence[Mapping]): A results JSON (e.g. Ultralytics' ``predictions.json``) or its
            list: ``[{"image_id", "category_id", "bbox": [x, y, w, h] pixels, "score"}, ...]``, with image ids as
            ``yolo_image_id`` gives them and category ids as the ground truth numbers them (class index + 1, or
            COCO's 91 ids for COCO).
        split (str): The data YAML key of the split to score.

    Returns:
        (dict): ``{"coco": {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100", "per_class"}, "voc":
            {"mAP50_11point", "mAP50_area", "per_class"} (only with VOC annotations), "protocol": str,
            "ground_truth": {"coco": source, "voc": source}, "data": str, "split": str, "images": int,
            "dropped_images": [{"image", "reason"}]}``. AP values are fractions in [0, 1], or None where undefined
            (e.g. APs without small objects). ``images`` counts the images scored; ``dropped_images`` lists those
            Ultralytics' validator does not evaluate (unreadable, or a label file with an invalid line), which are in
            neither the ground truth nor the scored predictions.

    Raises:
        FileNotFoundError: If the data YAML, a split folder or an annotation file is missing.
        ValueError: If the YAML has no ``names``, the split has no usable image, or the predictions are malformed or
            name unknown image or category ids. Messages name the file and value.

    Examples:
        >>> metrics = evaluate_predictions("data/sample/data.yaml", "runs/val/exp/predictions.json")  # doctest: +SKIP
        >>> metrics["coco"]["AP"], metrics["voc"]["mAP50_11point"]  # doctest: +SKIP
        (0.61, 0.88)
    """
    return _score(load_split(data, split), predictions)


def score_predictions_file(
    data: str | Path, predictions: Predictions, out_dir: str | Path, split: str = "val"
) -> tuple[dict[str, Any], Path]:
    """Score an existing predictions file without a model and save the result, like a model run would.

    Nothing is written unless scoring succeeds, so bad input leaves no half-filled run directory.

    Args:
        data (str | Path): An Ultralytics data YAML, as for :func:`evaluate_predictions`.
        predictions (str | Path | Sequence[Mapping]): Detections in the COCO results format.
        out_dir (str | Path): Run directory to create (or reuse): receives ``predictions.json`` (a copy),
            ``metrics.json`` and, when the ground truth was built from YOLO labels, ``ground_truth.json``.
        split (str): The data YAML key of the split to score.

    Returns:
        (tuple[dict, Path]): The metrics of :func:`evaluate_predictions` and the run directory.

    Raises:
        FileNotFoundError: If the data or the predictions file is missing.
        ValueError: As :func:`evaluate_predictions`.

    Examples:
        >>> metrics, run = score_predictions_file("data.yaml", "predictions.json", "runs/val/exp")  # doctest: +SKIP
    """
    if isinstance(predictions, (str, Path)) and not Path(predictions).is_file():
        raise FileNotFoundError(f"predictions={predictions}: no such file. Fix: pass a COCO results JSON.")
    gt = load_split(data, split)
    metrics = _score(gt, predictions)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    copy = out_dir / "predictions.json"
    if isinstance(predictions, (str, Path)):
        if Path(predictions).resolve() != copy.resolve():
            with atomic_path(copy) as tmp:  # a kill or a full disk mid-copy leaves no truncated predictions.json
                shutil.copyfile(predictions, tmp)
        metrics["predictions"] = str(Path(predictions).resolve())
    else:
        write_json_atomic(copy, list(predictions))
    save_run(gt, metrics, out_dir)
    return metrics, out_dir


class PycocotoolsDetectionValidator(DetectionValidator):
    """Ultralytics' detection validator with its JSON scoring left to :mod:`attnyolo.evaluation`.

    Ultralytics >= 8.3.157 scores ``save_json`` output with faster-coco-eval, which it tries to pip-install at run
    time. Here the predictions are scored with pycocotools and the VOC devkit instead, so that step is skipped:
    no install attempt, no warning, and ``metrics.box`` stays Ultralytics' own matcher on every dataset (for COCO,
    Ultralytics would otherwise overwrite it with faster-coco-eval's numbers).
    """

    detections: list[dict[str, Any]] | None = None  # the COCO results of the last run, set by finalize_metrics

    def finalize_metrics(self) -> None:
        """Finalize as Ultralytics does, then take the detections so that Ultralytics does not write them itself.

        Ultralytics writes ``predictions.json`` in place (a kill or a full disk leaves it truncated) whenever its
        detection list is non-empty; :func:`validate_model` writes the file atomically from :attr:`detections`.
        """
        super().finalize_metrics()
        self.detections, self.jdict = list(self.jdict or []), []

    def eval_json(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Return ``stats`` unchanged: :func:`validate_model` scores ``predictions.json`` itself."""
        return stats


def _align_categories(
    predictions: list[dict[str, Any]], class_map: Sequence[int], gt: SplitGroundTruth, model_classes: int
) -> tuple[list[dict[str, Any]], bool]:
    """Renumber Ultralytics' category ids into the ground truth's; drop classes the data does not have.

    ``save_json`` writes ``class_map[class index]``: COCO's 91 ids only when it recognises COCO by the file name
    ``val2017.txt``, class index + 1 otherwise. The ground truth decides what the ids must be.
    """
    class_of = {category: index for index, category in enumerate(class_map)}
    aligned, dropped, changed = [], 0, False
    for p in predictions:
        index = class_of.get(p["category_id"])
        target = gt.category_of_class[index] if index is not None and index < len(gt.category_of_class) else None
        if target is None:
            dropped += 1
            continue
        changed |= target != p["category_id"]
        aligned.append({**p, "category_id": target})
    if dropped:
        warnings.warn(
            f"{dropped} detections of classes the data does not have were dropped (the model has {model_classes} "
            f"classes, {gt.data} has {len(gt.names)}); every AP still counts all ground-truth objects.",
            UserWarning,
            stacklevel=3,
        )
    return aligned, changed or dropped > 0


def validate_model(model: str | Path, data: str | Path, **ultralytics_kwargs: Any) -> tuple[dict[str, Any], Path]:
    """Run a checkpoint over a split with Ultralytics' validator and score it with pycocotools and the VOC devkit.

    The dataset is checked first (images, labels, annotations), so a bad dataset fails before the model runs.
    Ultralytics is called as ``YOLO(model).val(data=..., save_json=True, conf=0.001, plots=False, **kwargs)``.

    Args:
        model (str | Path): A trained detection checkpoint (``.pt``).
        data (str | Path): An Ultralytics data YAML, as for :func:`evaluate_predictions`.
        **ultralytics_kwargs (Any): Ultralytics val settings (imgsz, batch, device, workers, split, conf, iou,
            half, project, name, exist_ok, ...). ``save_json`` is always on. ``project`` defaults to ``runs/val``
            under the working directory and ``name`` to ``exp``; the directory is numbered like Ultralytics' (``exp``,
            ``exp-2``, ...), relative paths are taken from the working directory.

    Returns:
        (tuple[dict, Path]): The metrics of :func:`evaluate_predictions` plus ``"ultralytics": {"mAP50-95",
            "mAP50"}`` (Ultralytics' own numbers) and ``"model"``; and the run directory, which holds
            ``predictions.json`` and ``metrics.json``.

    Raises:
        FileNotFoundError: If the checkpoint or the data is missing.
        ValueError: If the checkpoint cannot be loaded or is not a detector, or as :func:`evaluate_predictions`.

    Examples:
        >>> metrics, run = validate_model("runs/train/exp/weights/best.pt", "data/sample/data.yaml")  # doctest: +SKIP
        >>> metrics["coco"]["AP"], metrics["ultralytics"]["mAP50-95"]  # doctest: +SKIP
        (0.61, 0.62)
    """
    path = check_checkpoint_file(model)
    split = ultralytics_kwargs.get("split") or "val"
    # The dataset is checked before the model is even opened.
    gt = load_split(data, split, single_cls=bool(ultralytics_kwargs.get("single_cls")))
    yolo = load_model(path)

    settings = {"conf": DEFAULT_CONF, "plots": False, "name": DEFAULT_NAME, **ultralytics_kwargs}
    # An absolute project: Ultralytics files relative ones under its own runs_dir/<task>/, not the working directory.
    settings["project"] = str(Path(settings.get("project") or runs_dir("val")).resolve())
    settings.update(data=str(gt.data), save_json=True, split=split)
    validators = []
    yolo.add_callback("on_val_end", validators.append)  # the validator knows the run directory and class map
    results = yolo.val(validator=PycocotoolsDetectionValidator, **settings)
    validator = validators[-1]
    run_dir = Path(validator.save_dir)
    # Score the images the validator evaluated: its dataset is built with the same verdicts as the ground truth, but
    # from its own label cache, which a file edited since could make disagree.
    gt = gt.restricted_to(evaluated_images(validator), "not evaluated by Ultralytics' validator (its label cache)")

    predictions, _ = _align_categories(validator.detections or [], validator.class_map, gt, len(yolo.names))
    # Written here, atomically: the file matches metrics.json, so score_predictions_file() on it gives the same numbers.
    write_json_atomic(run_dir / "predictions.json", predictions)

    metrics = _score(gt, predictions)
    metrics["ultralytics"] = {"mAP50-95": float(results.box.map), "mAP50": float(results.box.map50)}
    metrics["model"] = str(path.resolve())
    save_run(gt, metrics, run_dir)
    return metrics, run_dir
