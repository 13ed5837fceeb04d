"""The sample dataset: deterministic, its three annotation formats agree, and real tools read every file."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from attnyolo.data.sample import (
    CLASS_NAMES,
    DIFFICULT_MIN_SIDE_FRAC,
    VIDEO_FPS,
    VIDEO_SECONDS,
    make_sample_dataset,
    sample_video_truth,
)

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A small dataset with video; the same seed is generated again by the determinism test."""
    return make_sample_dataset(tmp_path_factory.mktemp("a"), n_train=6, n_val=4, imgsz=160, seed=3, video=True)


def annotation_bytes(root: Path) -> dict:
    """Every label and annotation file of a generated dataset, by relative path."""
    files = [*root.glob("labels/*/*.txt"), *root.glob("Annotations/*.xml"), *root.glob("annotations/*.json")]
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(files)}


def yolo_boxes(label: Path, width: int, height: int) -> list:
    """(class, x0, y0, x1, y1) pixel boxes of a YOLO label file."""
    boxes = []
    for line in label.read_text().splitlines():
        c, cx, cy, w, h = map(float, line.split())
        boxes.append((int(c), (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height))
    return boxes


def voc_objects(xml: Path) -> tuple:
    """Image size and (class name, xmin, ymin, xmax, ymax, difficult) of a VOC file, read with the standard library."""
    root = ET.parse(xml).getroot()
    size = (int(root.findtext("size/width")), int(root.findtext("size/height")))
    objects = []
    for obj in root.iter("object"):
        box = [int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        objects.append((obj.findtext("name"), *box, int(obj.findtext("difficult"))))
    return size, objects


def test_same_seed_gives_identical_files(sample, tmp_path):
    again = make_sample_dataset(tmp_path / "b", n_train=6, n_val=4, imgsz=160, seed=3, video=False)
    first, second = annotation_bytes(sample.parent), annotation_bytes(again.parent)
    assert len(first) == 6 + 4 + 10 + 2  # YOLO labels, VOC XML, COCO JSON
    assert first == second
    other = make_sample_dataset(tmp_path / "c", n_train=6, n_val=4, imgsz=160, seed=4, video=False)
    assert annotation_bytes(other.parent) != first


def test_yolo_voc_and_coco_boxes_agree(sample):
    root = sample.parent
    data = yaml.safe_load(sample.read_text())
    names = data["names"]
    for split in ("train", "val"):
        coco = json.loads((root / data["coco_annotations"][split]).read_text())
        by_image = {im["id"]: [] for im in coco["images"]}
        for ann in coco["annotations"]:
            by_image[ann["image_id"]].append(ann)
        images = sorted((root / data[split]).glob("*.jpg"))
        assert [im["file_name"] for im in coco["images"]] == [p.name for p in images]
        for image in images:
            height, width = cv2.imread(str(image)).shape[:2]
            (xml_w, xml_h), voc = voc_objects(root / data["voc_annotations"] / f"{image.stem}.xml")
            assert (xml_w, xml_h) == (width, height)
            yolo = yolo_boxes(root / "labels" / split / f"{image.stem}.txt", width, height)
            anns = by_image[int(image.stem)]  # numeric names: the image id Ultralytics' save_json derives
            assert len(yolo) == len(voc) == len(anns) > 0
            for (c, *box), (name, xmin, ymin, xmax, ymax, difficult), ann in zip(yolo, voc, anns):
                assert names[c] == name == CLASS_NAMES[ann["category_id"] - 1]
                # VOC: 1-based inclusive pixel indices, so pixels xmin..xmax span the continuous [xmin - 1, xmax]
                np.testing.assert_allclose(box, [xmin - 1, ymin - 1, xmax, ymax], atol=1)
                x, y, w, h = ann["bbox"]
                np.testing.assert_allclose(box, [x, y, x + w, y + h], atol=1)
                assert ann["difficult"] == difficult and ann["iscrowd"] == 0
                assert 0 < ann["area"] <= w * h  # visible pixels of the shape, inside its box


def test_some_objects_are_difficult_and_small_ones_always(sample):
    root = sample.parent
    flags = []
    for xml in sorted((root / "Annotations").glob("*.xml")):
        (width, height), objects = voc_objects(xml)
        for _, xmin, ymin, xmax, ymax, difficult in objects:
            flags.append(difficult)
            if min(xmax - xmin + 1, ymax - ymin + 1) < DIFFICULT_MIN_SIDE_FRAC * min(width, height):
                assert difficult, f"{xml}: a tiny object is not marked difficult"
    assert 0 < sum(flags) < len(flags)


def test_pycocotools_and_ultralytics_read_the_dataset(sample):
    from pycocotools.coco import COCO
    from ultralytics.data.utils import check_det_dataset

    data = yaml.safe_load(sample.read_text())
    coco = COCO(str(sample.parent / data["coco_annotations"]["val"]))
    assert coco.getCatIds() == [1, 2, 3]
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) > 0
    checked = check_det_dataset(str(sample), autodownload=False)
    assert checked["nc"] == 3 and Path(checked["val"]).is_dir()


def test_video_is_readable(sample):
    cap = cv2.VideoCapture(str(sample.parent / "sample.mp4"))
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames += 1
        assert frame.shape == (240, 320, 3)
    cap.release()
    assert frames == VIDEO_FPS * VIDEO_SECONDS


def test_video_truth_boxes_the_moving_shapes_in_the_decoded_video(sample):
    """Against the decoded file: the still background is each pixel's median over time (every shape moves on), the
    pixels that differ from it are the shapes, and the true boxes must hold them, each box well filled by them."""
    cap = cv2.VideoCapture(str(sample.parent / "sample.mp4"))
    frames = []
    while (read := cap.read())[0]:
        frames.append(read[1].astype(np.int16))
    cap.release()
    frames = np.stack(frames)
    truth = sample_video_truth(seed=3)
    assert len(truth) == len(frames) == VIDEO_FPS * VIDEO_SECONDS
    assert all(obj is None or obj.cls == i for objects in truth for i, obj in enumerate(objects))
    background = np.median(frames, 0)
    filled, stray = [], []
    for frame, objects in zip(frames, truth):
        assert len(objects) == len(CLASS_NAMES)  # one moving shape per class, identity = position in the list
        changed = np.abs(frame - background).max(-1) > 40  # well above mp4v's coding noise
        boxed = np.zeros(changed.shape, bool)
        for obj in objects:
            if obj is not None:
                boxed[obj.y0 : obj.y1, obj.x0 : obj.x1] = True
                filled.append(changed[obj.y0 : obj.y1, obj.x0 : obj.x1].mean())
        stray.append((changed & ~boxed).mean())
    # A triangle fills half its box; a box placed beside its shape would hold almost no changed pixel.
    assert min(filled) > 0.25 and np.mean(filled) > 0.45, (min(filled), np.mean(filled))
    assert max(stray) < 0.05, max(stray)  # only coding noise at the shapes' edges lies outside every box


def test_bad_sizes_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="n_train=0"):
        make_sample_dataset(tmp_path, n_train=0, n_val=1)
    with pytest.raises(ValueError, match="imgsz=8"):
        make_sample_dataset(tmp_path, n_train=1, n_val=1, imgsz=8)


def exit_status(main, argv) -> int:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code


def test_tool_writes_dataset(tmp_path):
    # One real process: the script's own imports, exit status and output, end to end.
    args = [f"out={tmp_path / 's'}", "n_train=2", "n_val=1", "imgsz=96", "video=false"]
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_sample_data.py"), *args],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s" / "data.yaml").is_file() and "val: 1 images" in done.stdout
    assert not (tmp_path / "s" / "sample.mp4").exists()


def test_tool_rejects_bad_arguments(tmp_path, capsys):
    from attnyolo.commands.make_sample_data import main

    assert exit_status(main, ["n_trian=2"]) == 2
    err = capsys.readouterr().err
    assert "n_train" in err and len(err.strip().splitlines()) == 1
    assert exit_status(main, [f"out={tmp_path}", "n_train=0"]) == 2
    assert "n_train=0" in capsys.readouterr().err
    assert exit_status(main, ["seed=abc"]) == 2
    assert exit_status(main, ["help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_tool_writes_by_default_where_the_training_tools_look(tmp_path, monkeypatch, capsys):
    from attnyolo.commands.make_sample_data import main
    from attnyolo.utils.paths import sample_data_dir

    monkeypatch.chdir(tmp_path)
    assert main(["n_train=1", "n_val=1", "imgsz=64", "video=false"]) == 0
    assert sample_data_dir() == tmp_path / "data" / "sample" and (sample_data_dir() / "data.yaml").is_file()
    assert f"data: {sample_data_dir() / 'data.yaml'}" in capsys.readouterr().out
