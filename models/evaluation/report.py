"""Reports of an evaluation: the run directory, ``metrics.json`` and the printed AP table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ultralytics.utils.files import increment_path

from ..utils.atomic import write_json_atomic
from ..utils.paths import runs_dir
from .coco import COCO_METRIC_NAMES
from .ground_truth import SplitGroundTruth

DEFAULT_NAME = "exp"


COCO_PROTOCOL = "COCO (pycocotools COCOeval, bbox)"


VOC_PROTOCOL = "PASCAL VOC devkit @ IoU 0.5 (difficult ignored)"


ULTRALYTICS_LABEL = "Ultralytics' own (101-point interpolation; not pycocotools)"


def save_run(gt: SplitGroundTruth, metrics: dict[str, Any], out_dir: Path) -> None:
    """Write metrics.json (and a built ground truth) into the run directory."""
    if gt.coco_built:
        write_json_atomic(out_dir / "ground_truth.json", gt.coco)
        metrics["ground_truth"]["coco_file"] = str(out_dir / "ground_truth.json")
    write_json_atomic(out_dir / "metrics.json", metrics)


def run_directory(project: str | Path | None = None, name: str = DEFAULT_NAME, exist_ok: bool = False) -> Path:
    """The run directory ``project/name``, numbered like Ultralytics' (``exp``, ``exp-2``, ...); not created.

    Args:
        project (str | Path | None): Parent folder; None means ``runs/val`` under the working directory. Relative
            paths are taken from the working directory.
        name (str): Run name.
        exist_ok (bool): Reuse ``project/name`` if it exists instead of numbering a new one.

    Returns:
        (Path): An absolute path.

    Examples:
        >>> run_directory("/tmp/runs", "exp").name in {"exp", "exp-2", "exp-3"}  # doctest: +SKIP
        True
    """
    return increment_path(Path(project or runs_dir("val")).resolve() / str(name), exist_ok=exist_ok)


def _fmt(value: Any) -> str:
    """A fraction with 4 decimals, or '-' where undefined."""
    return "-" if value is None else f"{value:.4f}"


def format_metrics_table(metrics: Mapping[str, Any]) -> str:
    """A plain-text table of the metrics from :func:`evaluate_predictions` or :func:`validate_model`.

    Args:
        metrics (Mapping): The metrics dict; the ``voc`` and ``ultralytics`` blocks are shown when present.

    Returns:
        (str): Overall COCO and VOC numbers, Ultralytics' own mAP (labelled as such), and a per-class table.

    Examples:
        >>> print(format_metrics_table(evaluate_predictions("data.yaml", "predictions.json")))  # doctest: +SKIP
    """
    lines = []
    if "data" in metrics:
        lines.append(f"data: {metrics['data']} (split {metrics.get('split', 'val')}, {metrics.get('images')} images)")
    dropped = metrics.get("dropped_images") or []
    if dropped:
        first = dropped[0]
        more = f"; {len(dropped) - 1} more in metrics.json" if len(dropped) > 1 else " (listed in metrics.json)"
        lines.append(
            f"dropped: {len(dropped)} image(s) Ultralytics' validator does not evaluate, not scored: "
            f"{Path(first['image']).name}: {first['reason']}{more}"
        )
    if "model" in metrics:
        lines.append(f"model: {metrics['model']}")
    if "protocol" in metrics:
        lines.append(f"protocol: {metrics['protocol']}")

    coco = metrics.get("coco")
    if coco:
        source = metrics.get("ground_truth", {}).get("coco")
        lines += ["", COCO_PROTOCOL + (f", ground truth: {source}" if source else "")]
        headers = ("AP@[.50:.95]", "AP50", "AP75", "APs", "APm", "APl", "AR100")
        lines.append("  " + "".join(f"{h:>14}" for h in headers))
        lines.append("  " + "".join(f"{_fmt(coco.get(k)):>14}" for k in COCO_METRIC_NAMES))
    voc = metrics.get("voc")
    if voc:
        lines += ["", VOC_PROTOCOL]
        lines.append(f"  {'mAP50 11-point (VOC2007)':<32}{_fmt(voc.get('mAP50_11point')):>10}")
        lines.append(f"  {'mAP50 area (VOC2010+)':<32}{_fmt(voc.get('mAP50_area')):>10}")
    ultralytics = metrics.get("ultralytics")
    if ultralytics:
        lines += ["", ULTRALYTICS_LABEL]
        lines.append(f"  {'mAP50-95':<32}{_fmt(ultralytics.get('mAP50-95')):>10}")
        lines.append(f"  {'mAP50':<32}{_fmt(ultralytics.get('mAP50')):>10}")

    names = list((coco or {}).get("per_class", {}))
    names += [n for n in (voc or {}).get("per_class", {}) if n not in names]
    if names:
        width = max(12, *(len(n) + 2 for n in names))
        header = f"  {'class':<{width}}{'COCO AP':>10}"
        if voc:
            header += f"{'VOC 11pt':>10}{'VOC area':>10}{'GT':>7}"
        lines += ["", header]
        for name in names:
            row = f"  {name:<{width}}{_fmt((coco or {}).get('per_class', {}).get(name)):>10}"
            if voc:
                entry = voc["per_class"].get(name, {})
                row += f"{_fmt(entry.get('AP50_11point')):>10}{_fmt(entry.get('AP50_area')):>10}"
                row += f"{entry.get('num_gt', '-'):>7}"
            lines.append(row)
        if voc:
            lines.append("  (GT: objects the VOC devkit counts, i.e. not difficult)")
    return "\n".join(lines)
