"""Dataset-level evaluation: data YAML + predictions -> COCO (pycocotools) and VOC (devkit) numbers.

Expectations come from pycocotools run directly on the same files, from the sample dataset's own annotations, and
from hand-made datasets whose VOC numbers follow from the devkit's definition.
"""

import json
import shutil
import warnings

import cv2
import numpy as np
import pytest
import yaml
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from attnyolo.data.sample import make_sample_dataset
from attnyolo.evaluation.report import format_metrics_table
from attnyolo.evaluation.validator import evaluate_predictions, score_predictions_file

EXACT = 1e-9
STATS_INDEX = {"AP": 0, "AP50": 1, "AP75": 2, "APs": 3, "APm": 4, "APl": 5, "AR100": 8}


# ------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A small sample dataset (YOLO labels, VOC XML with difficult flags, COCO JSON) and its val ground truth."""
    data_yaml = make_sample_dataset(tmp_path_factory.mktemp("sample"), n_train=1, n_val=12, imgsz=160, video=False)
    gt = json.loads((data_yaml.parent / "annotations" / "instances_val.json").read_text())
    return data_yaml, gt


def perfect(gt):
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9} for a in gt]


def noisy(gt, seed=0):
    """Imperfect detections: jittered boxes, random scores, some objects missed, some false positives."""
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        if rng.random() < 0.2:
            continue  # missed
        x, y, w, h = a["bbox"]
        jitter = rng.normal(0, 0.12, 4) * [w, h, w, h]
        box = [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])]
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": box, "score": rng.random()})
    for im in gt["images"]:
        out.append(
            {
                "image_id": im["id"],
                "category_id": 1 + int(rng.integers(3)),
                "bbox": [5, 5, 30, 20],
                "score": rng.random(),
            }
        )
    return out


def run_pycocotools(gt_path, results_path):
    """The reference: pycocotools used as its README shows, on the same files."""
    coco_gt = COCO(str(gt_path))
    evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(results_path)), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats


def assert_same_as_pycocotools(coco_metrics, stats):
    for name, index in STATS_INDEX.items():
        expected = None if stats[index] < 0 else stats[index]
        assert coco_metrics[name] == pytest.approx(expected, abs=EXACT), name


def without_coco_json(data_yaml, tmp_path):
    """A data YAML for the same images with the COCO JSON key removed: ground truth is built from the YOLO labels."""
    data = yaml.safe_load(data_yaml.read_text())
    del data["coco_annotations"]
    out = tmp_path / "labels_only.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def write_dataset(root, images, names=("cat", "dog"), voc=True, label_difficult=True):
    """A hand-made dataset in Ultralytics' VOC layout.

    ``images``: {stem: (width, height, [(class, (xmin, ymin, xmax, ymax) 1-based inclusive VOC box, difficult)])}.
    YOLO labels use Ultralytics' VOC.yaml conversion: continuous box [xmin - 1, xmax - 1] x [ymin - 1, ymax - 1];
    ``label_difficult=False`` also leaves difficult objects out of the labels, as that conversion does.
    """
    for sub in ("images/val", "labels/val", "images/train", "Annotations"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for stem, (width, height, objects) in images.items():
        cv2.imwrite(str(root / "images" / "val" / f"{stem}.jpg"), np.full((height, width, 3), 127, np.uint8))
        rows, xml = [], [f"<annotation><size><width>{width}</width><height>{height}</height></size>"]
        for cls, (x1, y1, x2, y2), difficult in objects:
            cx, cy = (x1 + x2) / 2 - 1, (y1 + y2) / 2 - 1
            if label_difficult or not difficult:
                rows.append(
                    f"{cls} {cx / width:.8f} {cy / height:.8f} {(x2 - x1) / width:.8f} {(y2 - y1) / height:.8f}"
                )
            xml.append(
                f"<object><name>{names[cls]}</name><difficult>{int(difficult)}</difficult><bndbox><xmin>{x1}</xmin>"
                f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            )
        (root / "labels" / "val" / f"{stem}.txt").write_text("".join(r + "\n" for r in rows))
        (root / "Annotations" / f"{stem}.xml").write_text("".join(xml) + "</annotation>")
    data = {"path": str(root), "train": "images/train", "val": "images/val", "names": dict(enumerate(names))}
    if voc:
        data["voc_annotations"] = "Annotations"
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def det(image_id, category_id, voc_box, score):
    """A COCO result for a box given as VOC corners, in the Ultralytics-VOC-label frame ([xmin - 1, ...])."""
    x1, y1, x2, y2 = voc_box
    return {
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x1 - 1, y1 - 1, x2 - x1, y2 - y1],
        "score": score,
    }


# ---------------------------------------------------------------------------------------------------- sample data
def test_perfect_predictions_score_one_on_both_protocols(sample):
    data_yaml, gt = sample
    assert any(a["difficult"] for a in gt["annotations"])  # the case the VOC protocol must handle
    metrics = evaluate_predictions(data_yaml, perfect(gt["annotations"]))
    for name in ("AP", "AP50", "AP75", "AR100"):
        assert metrics["coco"][name] == pytest.approx(1.0, abs=EXACT), name
    assert metrics["voc"]["mAP50_11point"] == pytest.approx(1.0, abs=EXACT)
    assert metrics["voc"]["mAP50_area"] == pytest.approx(1.0, abs=EXACT)
    assert metrics["images"] == len(gt["images"]) == 12
    assert "pycocotools" in metrics["protocol"] and "VOC" in metrics["protocol"]
    # The devkit counts non-difficult objects only.
    counted = sum(entry["num_gt"] for entry in metrics["voc"]["per_class"].values())
    assert counted == sum(not a["difficult"] for a in gt["annotations"])


def test_coco_numbers_equal_pycocotools_on_the_coco_json(sample, tmp_path):
    data_yaml, gt = sample
    results = tmp_path / "predictions.json"
    results.write_text(json.dumps(noisy(gt)))
    metrics = evaluate_predictions(data_yaml, results)
    stats = run_pycocotools(data_yaml.parent / "annotations" / "instances_val.json", results)
    assert 0.05 < stats[0] < 0.95  # a discriminating case, not all-or-nothing
    assert_same_as_pycocotools(metrics["coco"], stats)


def test_ground_truth_built_from_yolo_labels(sample, tmp_path):
    data_yaml, gt = sample
    labels_only = without_coco_json(data_yaml, tmp_path)
    results = tmp_path / "noisy.json"
    results.write_text(json.dumps(noisy(gt, seed=1)))
    metrics, run_dir = score_predictions_file(labels_only, results, tmp_path / "run")

    built_file = run_dir / "ground_truth.json"
    assert metrics["ground_truth"]["coco_file"] == str(built_file)
    built = json.loads(built_file.read_text())
    # Same objects as the sample's own COCO JSON, up to the 6 decimals of the label files; difficult -> iscrowd.
    key = lambda a: (a["image_id"], a["category_id"], round(a["bbox"][0]), round(a["bbox"][1]))  # noqa: E731
    mine, theirs = sorted(built["annotations"], key=key), sorted(gt["annotations"], key=key)
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs):
        assert (a["image_id"], a["category_id"], a["iscrowd"]) == (b["image_id"], b["category_id"], b["difficult"])
        assert a["bbox"] == pytest.approx(b["bbox"], abs=1e-3)

    assert_same_as_pycocotools(metrics["coco"], run_pycocotools(built_file, run_dir / "predictions.json"))
    # Difficult objects are ignored here but counted against the plain COCO JSON: the numbers differ.
    assert metrics["coco"]["AP"] != evaluate_predictions(data_yaml, results)["coco"]["AP"]


def test_a_label_file_with_bad_lines_drops_its_image_as_ultralytics_does(sample, tmp_path):
    # Ultralytics' validator drops the whole image; its valid objects must not count as misses (see
    # test_dropped_images.py for the AP of the dataset without the image).
    data_yaml, gt = sample
    copy = tmp_path / "copy"
    shutil.copytree(data_yaml.parent, copy)
    data = yaml.safe_load((copy / "data.yaml").read_text())
    data["path"] = str(copy)
    del data["coco_annotations"]
    (copy / "data.yaml").write_text(yaml.safe_dump(data))
    label = copy / "labels" / "val" / "000002.txt"
    label.write_text(label.read_text() + "7 0.5 0.5 0.2 0.2\n0 0.5 0.5\n")
    predictions = [p for p in perfect(gt["annotations"]) if p["image_id"] != 2]  # the model never saw it
    with pytest.warns(UserWarning, match="000002.jpg: dropped from the evaluation") as caught:
        metrics = evaluate_predictions(copy / "data.yaml", predictions)
    assert len(caught) == 1
    assert metrics["coco"]["AP"] == pytest.approx(1.0, abs=EXACT) and metrics["images"] == 11
    assert [d["image"] for d in metrics["dropped_images"]] == [str(copy / "images" / "val" / "000002.jpg")]


def test_format_metrics_table_labels_each_block(sample):
    data_yaml, gt = sample
    metrics = evaluate_predictions(data_yaml, perfect(gt["annotations"]))
    metrics["ultralytics"] = {"mAP50-95": 0.5, "mAP50": 0.75}
    table = format_metrics_table(metrics)
    assert "COCO (pycocotools COCOeval, bbox)" in table
    assert "mAP50 11-point (VOC2007)" in table and "mAP50 area (VOC2010+)" in table
    assert "Ultralytics' own (101-point interpolation; not pycocotools)" in table and "0.7500" in table
    assert all(name in table for name in ("circle", "rectangle", "triangle"))


# ------------------------------------------------------------------------------------------------ input checks
def test_predictions_with_unknown_image_id_or_bad_entry_raise(sample):
    data_yaml, gt = sample
    with pytest.raises(ValueError, match="image_id.*999999"):
        evaluate_predictions(data_yaml, [{"image_id": 999999, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}])
    with pytest.raises(ValueError, match="entry 0 lacks key"):
        evaluate_predictions(data_yaml, [{"image_id": 2, "category_id": 1, "score": 0.5}])


def test_bad_datasets_raise_one_line_errors(sample, tmp_path):
    data_yaml, _ = sample
    with pytest.raises(FileNotFoundError, match="nope.yaml: no such file"):
        evaluate_predictions(tmp_path / "nope.yaml", [])
    data = yaml.safe_load(data_yaml.read_text())
    (tmp_path / "no_names.yaml").write_text(yaml.safe_dump({k: v for k, v in data.items() if k != "names"}))
    with pytest.raises(ValueError, match="no 'names' key"):
        evaluate_predictions(tmp_path / "no_names.yaml", [])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.yaml").write_text(yaml.safe_dump({**data, "val": str(tmp_path / "empty")}))
    with pytest.raises(ValueError, match="holds no images"):
        evaluate_predictions(tmp_path / "empty.yaml", [])
    (tmp_path / "missing.yaml").write_text(yaml.safe_dump({**data, "val": str(tmp_path / "absent")}))
    with pytest.raises(FileNotFoundError, match="absent"):
        evaluate_predictions(tmp_path / "missing.yaml", [])


def test_corrupt_image_is_dropped_with_a_warning_naming_it(tmp_path):
    data_yaml = write_dataset(
        tmp_path, {"000001": (64, 48, [(0, (5, 5, 30, 30), False)]), "000002": (64, 48, [(1, (9, 9, 40, 30), False)])}
    )
    (tmp_path / "images" / "val" / "000001.jpg").write_text("not an image")
    with pytest.warns(UserWarning, match=r"000001.jpg: dropped from the evaluation, as Ultralytics' validator drops"):
        metrics = evaluate_predictions(data_yaml, [])
    assert metrics["images"] == 1 and metrics["dropped_images"][0]["image"].endswith("000001.jpg")


# ---------------------------------------------------------------------------------------------- VOC devkit rules
@pytest.mark.parametrize("label_difficult", [True, False], ids=["difficult-in-labels", "difficult-only-in-xml"])
def test_detections_of_difficult_objects_do_not_lower_ap(tmp_path, label_difficult):
    # Class 0 has two non-difficult objects (images 1 and 2) and one difficult object (image 1).
    data_yaml = write_dataset(
        tmp_path,
        {
            "000001": (100, 80, [(0, (11, 11, 40, 40), False), (0, (51, 31, 90, 70), True)]),
            "000002": (100, 80, [(0, (21, 21, 60, 60), False)]),
        },
        label_difficult=label_difficult,
    )
    hit = det(1, 1, (11, 11, 40, 40), 0.9)  # finds one of the two countable objects: recall 1/2, precision 1
    on_difficult = det(1, 1, (51, 31, 90, 70), 0.95)  # ranked first, matches the difficult object
    without = evaluate_predictions(data_yaml, [hit])
    with_difficult = evaluate_predictions(data_yaml, [hit, on_difficult])
    # Devkit: the detection of a difficult object is neither TP nor FP, so both curves are (recall .5, precision 1):
    # area AP = .5; 11-point AP = 6/11 (t = 0 .. .5). Counted as a false positive it would give .25 and 6/22.
    for metrics in (without, with_difficult):
        assert metrics["voc"]["mAP50_area"] == pytest.approx(0.5, abs=EXACT)
        assert metrics["voc"]["mAP50_11point"] == pytest.approx(6 / 11, abs=EXACT)
        assert metrics["voc"]["per_class"]["cat"]["num_gt"] == 2
        assert metrics["voc"]["per_class"]["dog"]["AP50_area"] is None  # no objects: undefined, not 0
    # The ground truth built from the labels marks the difficult object iscrowd (taking it from the XML when the
    # labels lack it), so COCOeval ignores it as well: recall 1/2 at precision 1 either way.
    assert without["coco"]["AP50"] == pytest.approx(with_difficult["coco"]["AP50"], abs=EXACT)
    assert without["coco"]["AP50"] == pytest.approx(51 / 101, abs=EXACT)  # 101-point: recall 0 .. .5
    # Only detections of difficult objects: as good as no detections at all.
    assert evaluate_predictions(data_yaml, [on_difficult])["voc"]["mAP50_area"] == 0.0


def test_voc_box_convention_adds_one_to_every_corner(tmp_path):
    # A 2 x 2 pixel object (VOC 11..12). In Ultralytics' VOC-label frame its box is [10, 10, 1, 1], which the
    # devkit convention (+1 on all four corners) maps back to 11..12 exactly. Any other convention loses this
    # object: e.g. [x + 1, y + 1, x + w, y + h] gives 11..11, IoU 1/4.
    data_yaml = write_dataset(tmp_path, {"000001": (64, 48, [(1, (11, 11, 12, 12), False)])})
    metrics = evaluate_predictions(data_yaml, [det(1, 2, (11, 11, 12, 12), 0.8)])
    assert metrics["voc"]["per_class"]["dog"]["AP50_area"] == pytest.approx(1.0, abs=EXACT)
    # One pixel off to the right: IoU 2/6 under the devkit's inclusive areas -> a false positive.
    shifted = det(1, 2, (12, 11, 13, 12), 0.8)
    assert evaluate_predictions(data_yaml, [shifted])["voc"]["per_class"]["dog"]["AP50_area"] == 0.0


def test_no_voc_block_without_voc_annotations(tmp_path):
    data_yaml = write_dataset(tmp_path, {"000001": (64, 48, [(0, (5, 5, 30, 30), False)])}, voc=False)
    shutil.rmtree(tmp_path / "Annotations")
    metrics = evaluate_predictions(data_yaml, [det(1, 1, (5, 5, 30, 30), 0.9)])
    assert "voc" not in metrics and "VOC" not in metrics["protocol"]
    assert metrics["coco"]["AP"] == pytest.approx(1.0, abs=EXACT)


# ------------------------------------------------------------------------------------------------------ COCO layout
def test_coco_layout_uses_instances_json_and_91_category_ids(tmp_path):
    # coco.yaml style: val: val2017.txt listing ./images/val2017/*.jpg, ground truth in annotations/, and the
    # original COCO category ids (person = 1, toothbrush = 90) rather than class index + 1.
    (tmp_path / "images" / "val2017").mkdir(parents=True)
    images, annotations = [], []
    for k, image_id in enumerate((139, 285)):
        name = f"{image_id:012d}.jpg"
        cv2.imwrite(str(tmp_path / "images" / "val2017" / name), np.zeros((48, 64, 3), np.uint8))
        images.append({"id": image_id, "file_name": name, "width": 64, "height": 48})
        category = (1, 90)[k]
        annotations.append(
            {
                "id": k + 1,
                "image_id": image_id,
                "category_id": category,
                "bbox": [4, 4, 30, 20],
                "area": 600,
                "iscrowd": 0,
            }
        )
    (tmp_path / "annotations").mkdir()
    categories = [{"id": 1, "name": "person"}, {"id": 90, "name": "toothbrush"}]
    gt = {"images": images, "annotations": annotations, "categories": categories}
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(gt))
    (tmp_path / "val2017.txt").write_text("".join(f"./images/val2017/{im['file_name']}\n" for im in images))
    data = {
        "path": str(tmp_path),
        "train": "val2017.txt",
        "val": "val2017.txt",
        "names": {0: "person", 1: "toothbrush"},
    }
    (tmp_path / "coco.yaml").write_text(yaml.safe_dump(data))

    predictions = [{**a, "score": 0.9} for a in annotations]
    metrics = evaluate_predictions(tmp_path / "coco.yaml", predictions)
    assert metrics["coco"]["AP"] == pytest.approx(1.0, abs=EXACT)
    assert metrics["ground_truth"]["coco"].endswith("instances_val2017.json")
    assert set(metrics["coco"]["per_class"]) == {"person", "toothbrush"}
    # Class index + 1 (what save_json writes for non-COCO data) is caught instead of scored as the wrong class.
    with pytest.raises(ValueError, match="category_id.*coco80_to_91"):
        evaluate_predictions(tmp_path / "coco.yaml", [{**predictions[1], "category_id": 2}])


def test_no_warnings_for_a_clean_dataset(sample):
    data_yaml, gt = sample
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_predictions(data_yaml, perfect(gt["annotations"]))
