"""Dataset conversion: small hand-made VOCdevkit and COCO folders become YOLO layouts that keep their annotations."""

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

from attnyolo.commands import run
from attnyolo.data.convert import VOC_CLASS_NAMES, convert_dataset, detect_format
from attnyolo.data.sample import make_sample_dataset

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}


def write_image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width, 3), 127, np.uint8))


def write_voc_xml(path: Path, width: int, height: int, objects) -> None:
    """objects: (name, xmin, ymin, xmax, ymax, difficult) with VOC's 1-based inclusive pixel indices."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
        f"<xmax>{c}</xmax><ymax>{e}</ymax></bndbox></object>"
        for n, a, b, c, e, d in objects
    )
    path.write_text(
        f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>{rows}</annotation>"
    )


def make_voc_year(devkit: Path, year: str, images: dict, image_sets: dict) -> None:
    """images: id -> list of objects; image_sets: name -> list of ids. Every image is 100 x 50 pixels."""
    root = devkit / year
    for image_id, objects in images.items():
        write_image(root / "JPEGImages" / f"{image_id}.jpg", 100, 50)
        write_voc_xml(root / "Annotations" / f"{image_id}.xml", 100, 50, objects)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for name, ids in image_sets.items():
        (root / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))


def read_labels(path: Path) -> list:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


@pytest.fixture
def devkit(tmp_path):
    devkit = tmp_path / "VOCdevkit"
    make_voc_year(
        devkit,
        "VOC2007",
        {
            "000001": [("dog", 11, 6, 60, 45, 0)],
            "000002": [("person", 1, 1, 100, 50, 0), ("bottle", 21, 11, 30, 20, 1)],  # one difficult
            "000003": [("tvmonitor", 51, 26, 100, 50, 1), ("aeroplane", 1, 1, 10, 10, 0)],
        },
        {"trainval": ["000001", "000002"], "test": ["000003"], "train": ["000001"], "val": ["000002"]},
    )
    make_voc_year(devkit, "VOC2012", {"2008_000001": [("cat", 2, 2, 41, 21, 0)]}, {"trainval": ["2008_000001"]})
    return devkit


def test_voc_devkit_converts_with_difficult_objects_kept(devkit, tmp_path):
    out = tmp_path / "out"
    assert detect_format(devkit) == "voc" and detect_format(tmp_path) == "voc"  # the devkit or its parent
    data_yaml = convert_dataset(devkit, out)
    data = yaml.safe_load(data_yaml.read_text())

    assert data_yaml == out.resolve() / "data.yaml" and data["path"] == str(out.resolve())
    names = list(data["names"].values())
    assert len(names) == 20 and names[0] == "aeroplane" and names[14] == "person" and names[-1] == "tvmonitor"
    assert names == list(VOC_CLASS_NAMES)
    # Standard split: 2007 + 2012 trainval for training, 2007 test for validation.
    assert sorted(p.stem for p in (out / "labels" / "train").glob("*.txt")) == ["000001", "000002", "2008_000001"]
    assert sorted(p.stem for p in (out / "labels" / "val").glob("*.txt")) == ["000003"]
    assert data["voc_splits"] == {"train": ["VOC2007/trainval", "VOC2012/trainval"], "val": ["VOC2007/test"]}

    # VOC pixels xmin..xmax (1-based) -> the continuous [xmin - 1, xmax - 1] of py-faster-rcnn/YOLOX/Ultralytics.
    dog = read_labels(out / "labels" / "train" / "000001.txt")
    np.testing.assert_allclose(dog, [[11, (10 + 59) / 2 / 100, (5 + 44) / 2 / 50, 49 / 100, 39 / 50]], atol=1e-6)
    # The difficult bottle is in the training labels (unlike Ultralytics' VOC.yaml, which drops it)...
    rows = read_labels(out / "labels" / "train" / "000002.txt")
    assert [int(r[0]) for r in rows] == [14, 4]
    np.testing.assert_allclose(rows[1][1:], [(20 + 29) / 2 / 100, (10 + 19) / 2 / 50, 9 / 100, 9 / 50], atol=1e-6)
    # ... and in the val labels, while the XML the evaluator reads still flags it difficult.
    assert [int(r[0]) for r in read_labels(out / "labels" / "val" / "000003.txt")] == [19, 0]
    xml_dir = out / data["voc_annotations"]
    flags = [o.findtext("difficult") for o in ET.parse(xml_dir / "000003.xml").getroot().iter("object")]
    assert flags == ["1", "0"]
    assert sorted(p.stem for p in xml_dir.glob("*.xml")) == ["000001", "000002", "000003", "2008_000001"]
    image = cv2.imread(str(out / "images" / "val" / "000003.jpg"))
    assert image is not None and image.shape == (50, 100, 3)

    from ultralytics.data.utils import check_det_dataset

    assert check_det_dataset(str(data_yaml), autodownload=False)["nc"] == 20
    convert_dataset(devkit, out)  # converting again over an earlier conversion is fine


def test_voc_without_2007_test_uses_val_and_says_so(tmp_path):
    devkit = tmp_path / "VOCdevkit"
    make_voc_year(
        devkit,
        "VOC2012",
        {"2008_000001": [("cat", 2, 2, 41, 21, 0)], "2008_000002": [("cow", 2, 2, 41, 21, 0)]},
        {"train": ["2008_000001"], "val": ["2008_000002"], "trainval": ["2008_000001", "2008_000002"]},
    )
    with pytest.warns(UserWarning, match="VOC2012 val"):
        data = yaml.safe_load(convert_dataset(devkit, tmp_path / "out").read_text())
    assert data["voc_splits"] == {"train": ["VOC2012/train"], "val": ["VOC2012/val"]}
    assert [p.stem for p in (tmp_path / "out" / "labels" / "val").glob("*.txt")] == ["2008_000002"]


def test_voc_layout_with_its_own_class_names_takes_them_from_the_annotations(devkit, tmp_path):
    write_voc_xml(devkit / "VOC2007" / "Annotations" / "000001.xml", 100, 50, [("unicorn", 1, 1, 5, 5, 0)])
    with pytest.warns(UserWarning, match=r"outside PASCAL VOC's 20 \(e\.g\. unicorn\); using the 6 class names"):
        data = yaml.safe_load(convert_dataset(devkit, tmp_path / "out").read_text())
    names = ["aeroplane", "bottle", "cat", "person", "tvmonitor", "unicorn"]  # every name in the files, sorted
    assert list(data["names"].values()) == names
    assert read_labels(tmp_path / "out" / "labels" / "train" / "000001.txt")[0][0] == names.index("unicorn")


def test_names_argument_sets_the_order_and_names_a_missing_class(devkit, tmp_path):
    names = ["tvmonitor", "aeroplane", "bottle", "cat", "dog", "person"]
    data = yaml.safe_load(convert_dataset(devkit, tmp_path / "out", names=",".join(names)).read_text())
    assert list(data["names"].values()) == names
    assert read_labels(tmp_path / "out" / "labels" / "val" / "000003.txt")[0][0] == 0  # tvmonitor first
    with pytest.raises(ValueError, match=r"000002\.xml: object class 'person' is not one of the 2 class names"):
        convert_dataset(devkit, tmp_path / "out2", names=["dog", "cat"])


def test_a_custom_folder_in_the_voc_layout_converts(tmp_path):
    # Custom data is often one folder with Annotations/JPEGImages/ImageSets, not named VOC20XX.
    make_voc_year(
        tmp_path,
        "helmets",
        {"a1": [("helmet", 2, 2, 40, 20, 0)], "b2": [("head", 10, 10, 30, 30, 0), ("helmet", 50, 5, 90, 45, 0)]},
        {"train": ["a1"], "val": ["b2"]},
    )
    assert detect_format(tmp_path / "helmets") == "voc"
    with pytest.warns(UserWarning, match="using the 2 class names found in them, sorted: head, helmet"):
        data = yaml.safe_load(convert_dataset(tmp_path / "helmets", tmp_path / "out").read_text())
    assert data["names"] == {0: "head", 1: "helmet"} and data["voc_splits"] == {
        "train": ["helmets/train"],
        "val": ["helmets/val"],
    }
    assert [row[0] for row in read_labels(tmp_path / "out" / "labels" / "val" / "b2.txt")] == [0, 1]


def test_every_dropped_box_is_counted_with_examples(devkit, tmp_path):
    objects = [
        ("dog", 11, 6, 60, 45, 0),  # kept
        ("cat", 60, 6, 11, 45, 0),  # inverted
        ("cat", 30, 20, 30, 30, 0),  # zero width (xmin == xmax: one pixel in VOC, but -1 ... -1 in the label frame)
        ("cow", 150, 10, 190, 40, 0),  # entirely right of the 100-pixel image
    ]
    write_voc_xml(devkit / "VOC2007" / "Annotations" / "000001.xml", 100, 50, objects)
    with pytest.warns(UserWarning) as caught:
        convert_dataset(devkit, tmp_path / "out")
    [warning] = [str(w.message) for w in caught if "dropped" in str(w.message)]
    assert warning.startswith("3 box(es) dropped: inverted, zero-size or entirely outside their image")
    assert "000001.xml object 1 'cat' [60 6 11 45] in a 100x50 image" in warning
    assert "object 2 'cat' [30 20 30 30]" in warning and "object 3 'cow' [150 10 190 40]" in warning
    assert len(read_labels(tmp_path / "out" / "labels" / "train" / "000001.txt")) == 1


def test_coco_boxes_that_cannot_be_labels_are_counted(tmp_path):
    make_coco(tmp_path / "coco")
    path = tmp_path / "coco" / "annotations" / "instances_val2017.json"
    coco = json.loads(path.read_text())
    coco["annotations"].append(
        {"id": 9, "image_id": 20, "category_id": 3, "bbox": [10, 10, 0, 30], "area": 0, "iscrowd": 0}
    )
    path.write_text(json.dumps(coco))
    with pytest.warns(UserWarning, match=r"1 box\(es\) dropped: .*instances_val2017\.json annotation 9 bbox"):
        convert_dataset(tmp_path / "coco", tmp_path / "out")


def test_labels_are_written_atomically_and_leftovers_of_killed_runs_removed(devkit, tmp_path, monkeypatch):
    out = tmp_path / "out"
    convert_dataset(devkit, out)
    label = out / "labels" / "train" / "000001.txt"
    before = label.read_text()
    stale = label.with_name(".000001.txt.999999999.tmp")  # a process that does not exist left it
    stale.write_text("half a la")

    from attnyolo.utils import atomic

    real = atomic.replace_atomically

    def disk_full(tmp, final, durable=True):
        if Path(final).name == "000001.txt":
            raise OSError(28, "No space left on device", str(tmp))
        return real(tmp, final, durable)

    monkeypatch.setattr(atomic, "replace_atomically", disk_full)
    with pytest.raises(OSError, match="No space left"):
        convert_dataset(devkit, out)
    assert label.read_text() == before  # the earlier, complete label file is untouched
    assert not stale.exists()  # removed by the next conversion into the folder
    assert not [p.name for p in label.parent.iterdir() if p.name.startswith(".")]  # nothing half-written left


def make_coco(root: Path) -> None:
    """A COCO folder with category ids that have gaps, a crowd region and an image without objects."""
    categories = [{"id": 7, "name": "zebra"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    splits = {
        "train2017": (
            [{"id": 10, "file_name": "000000000010.jpg", "width": 200, "height": 100}],
            [
                {"id": 1, "image_id": 10, "category_id": 7, "bbox": [10, 20, 50, 40], "area": 2000, "iscrowd": 0},
                {"id": 2, "image_id": 10, "category_id": 1, "bbox": [0, 0, 200, 100], "area": 9, "iscrowd": 1},
            ],
        ),
        "val2017": (
            [
                {"id": 20, "file_name": "000000000020.jpg", "width": 200, "height": 100},
                {"id": 21, "file_name": "000000000021.jpg", "width": 200, "height": 100},
            ],
            [{"id": 3, "image_id": 20, "category_id": 3, "bbox": [100, 50, 100, 50], "area": 5000, "iscrowd": 0}],
        ),
    }
    (root / "annotations").mkdir(parents=True)
    for split, (images, annotations) in splits.items():
        for image in images:
            write_image(root / split / image["file_name"], image["width"], image["height"])
        coco = {"images": images, "annotations": annotations, "categories": categories}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))


def test_coco_folder_converts_in_category_order(tmp_path):
    from pycocotools.coco import COCO

    make_coco(tmp_path / "coco")
    out = tmp_path / "out"
    assert detect_format(tmp_path / "coco") == "coco"
    data = yaml.safe_load(convert_dataset(tmp_path / "coco", out).read_text())

    assert data["train"] == "images/train2017" and data["val"] == "images/val2017"
    assert data["names"] == {0: "person", 1: "car", 2: "zebra"}  # sorted by category id
    np.testing.assert_allclose(
        read_labels(out / "labels" / "train2017" / "000000000010.txt"), [[2, 35 / 200, 40 / 100, 50 / 200, 40 / 100]]
    )  # the crowd region is left out
    np.testing.assert_allclose(
        read_labels(out / "labels" / "val2017" / "000000000020.txt"), [[1, 0.75, 0.75, 0.5, 0.5]]
    )
    assert (out / "labels" / "val2017" / "000000000021.txt").read_text() == ""  # a background image
    assert cv2.imread(str(out / "images" / "val2017" / "000000000021.jpg")) is not None
    gt = COCO(str(out / data["coco_annotations"]["val"]))
    assert gt.getImgIds() == [20, 21]


def test_sample_dataset_round_trips_through_the_coco_converter(tmp_path):
    sample = make_sample_dataset(tmp_path / "sample", n_train=3, n_val=2, imgsz=96, video=False).parent
    out = tmp_path / "out"
    data = yaml.safe_load(convert_dataset(sample, out).read_text())
    assert data["names"] == yaml.safe_load((sample / "data.yaml").read_text())["names"]
    for split in ("train", "val"):
        for label in sorted((sample / "labels" / split).glob("*.txt")):
            np.testing.assert_allclose(
                read_labels(out / "labels" / split / label.name), read_labels(label), atol=1e-5, err_msg=label.name
            )


def test_bad_sources_raise_errors_that_name_the_path(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        convert_dataset(missing, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty.*VOC20XX.*instances_\*\.json"):
        convert_dataset(tmp_path / "empty", tmp_path / "out")


def test_convert_tool_exit_codes(devkit, tmp_path, capsys):
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "convert.py"), f"source={devkit}", f"out={tmp_path / 'out'}"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "VOC" in done.stdout and (tmp_path / "out" / "data.yaml").is_file()
    assert "classes (20): aeroplane, bicycle, bird" in done.stdout

    # Failures in-process (no second interpreter start): one line naming the path, exit status 2.
    from attnyolo.commands import convert as tool

    for argv in ([f"source={tmp_path / 'nope'}", f"out={tmp_path / 'out2'}"], ["sourc=x"], [f"source={devkit}"]):
        with pytest.raises(SystemExit) as stop:
            tool.main(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out2").exists()
    with pytest.raises(SystemExit):
        tool.main([f"source={tmp_path / 'nope'}", "out=x"])
    assert str(tmp_path / "nope") in capsys.readouterr().err


# --------------------------------------- paths a dataset's contents name stay inside its folders and inside out=
def files_under(folder: Path) -> list[Path]:
    """Every file and link under ``folder`` (empty when it does not exist)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()) if folder.exists() else []


def coco_with_file_name(root: Path, file_name: str) -> Path:
    """The hand-made COCO folder, with the first val image's file_name replaced."""
    make_coco(root)
    json_path = root / "annotations" / "instances_val2017.json"
    data = json.loads(json_path.read_text())
    data["images"][0]["file_name"] = file_name
    json_path.write_text(json.dumps(data))
    return json_path


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "dotdot-inside-then-out"])
def test_a_coco_file_name_outside_the_image_folder_is_refused_and_nothing_written(kind, tmp_path):
    victim = tmp_path / "home" / "notes.txt"
    victim.parent.mkdir()
    victim.write_text("my notes\n")
    write_image(tmp_path / "home" / "notes.jpg", 200, 100)  # an image outside the dataset: must not be linked in
    file_name = {
        "absolute": str(tmp_path / "home" / "notes.jpg"),
        "dotdot": "../../home/notes.jpg",
        "dotdot-inside-then-out": "sub/../../../home/notes.jpg",
    }[kind]
    json_path = coco_with_file_name(tmp_path / "coco", file_name)
    out = tmp_path / "out"
    with pytest.raises(ValueError) as error:
        convert_dataset(tmp_path / "coco", out)
    message = str(error.value)
    assert message.startswith(f"{json_path} image 20 file_name {file_name!r} leads to "), message
    assert "nothing was written" in message and "\n" not in message
    assert files_under(out) == [] and victim.read_text() == "my notes\n"
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["notes.jpg", "notes.txt"]


def test_the_convert_tool_says_it_in_one_line(tmp_path, capsys):
    coco_with_file_name(tmp_path / "coco", "../../etc/passwd.jpg")
    with pytest.raises(SystemExit) as done:
        run("convert", [f"source={tmp_path / 'coco'}", f"out={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and err.count("\n") == 1 and "leads to" in err and "Traceback" not in err
    assert files_under(tmp_path / "out") == []


def test_a_symlink_inside_out_that_leads_elsewhere_is_refused(tmp_path):
    make_coco(tmp_path / "coco")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    (out / "labels").mkdir(parents=True)
    (out / "labels" / "val2017").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match=r"leads to .*elsewhere.*outside .*out; nothing was written"):
        convert_dataset(tmp_path / "coco", out)
    assert list(elsewhere.iterdir()) == []
    assert [p for p in files_under(out) if p.name != "val2017"] == []


def test_a_voc_image_id_with_dotdot_is_refused_and_nothing_written(tmp_path):
    devkit = tmp_path / "VOCdevkit"
    make_voc_year(devkit, "VOC2007", {"000001": [("dog", 11, 6, 60, 45, 0)]}, {"trainval": ["000001"], "test": []})
    other = tmp_path / "other" / "JPEGImages"
    make_voc_year(tmp_path / "other-devkit", "VOC2007", {"000244": [("cat", 2, 2, 41, 21, 0)]}, {})
    other.parent.mkdir(parents=True)
    (tmp_path / "other-devkit" / "VOC2007" / "JPEGImages").rename(other)
    annotations = tmp_path / "other" / "Annotations"
    (tmp_path / "other-devkit" / "VOC2007" / "Annotations").rename(annotations)
    entry = "../../../other/JPEGImages/000244"
    (devkit / "VOC2007" / "ImageSets" / "Main" / "test.txt").write_text(f"{entry}\n")
    out = tmp_path / "out"
    with pytest.raises(ValueError) as error:
        convert_dataset(devkit, out)
    assert f"test.txt entry {entry!r} leads to " in str(error.value) and "nothing was written" in str(error.value)
    assert files_under(out) == [] and not (tmp_path / "other" / "000244.txt").exists()
    assert sorted(p.name for p in files_under(tmp_path / "other")) == ["000244.jpg", "000244.xml"]


def test_converting_into_a_folder_with_files_says_what_it_replaced(tmp_path):
    make_coco(tmp_path / "coco")
    out = tmp_path / "out"
    convert_dataset(tmp_path / "coco", out)
    mine = out / "notes.txt"
    mine.write_text("kept\n")
    # the 3 label files (one per image); the images and JSON files are links to the same files, left as they are
    labels = "labels/train2017/000000000010.txt, labels/val2017/000000000020.txt, labels/val2017/000000000021.txt"
    with pytest.warns(UserWarning, match=rf"already held 3 file\(s\) this conversion replaced: {labels}$"):
        convert_dataset(tmp_path / "coco", out)
    assert mine.read_text() == "kept\n"  # files the conversion does not write are left alone


def test_out_an_existing_file_is_one_line(tmp_path, capsys):
    make_coco(tmp_path / "coco")
    out = tmp_path / "out.txt"
    out.write_text("a file\n")
    with pytest.raises(SystemExit) as done:
        run("convert", [f"source={tmp_path / 'coco'}", f"out={out}"])
    err = capsys.readouterr().err
    assert (
        done.value.code == 1
        and err.strip() == f"error: out={out} is a file, not a folder. Fix: name a new or empty folder for out=."
    )
    assert out.read_text() == "a file\n"
