"""The shipped dataset YAMLs: their download scripts compile and call functions that exist, with the right data."""

import ast
from pathlib import Path

import pytest
import yaml

import attnyolo.data.downloads as downloads

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "data").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_download_script_imports_and_calls_what_exists(path, monkeypatch):
    data = yaml.safe_load(path.read_text())
    script = data["download"]
    tree = ast.parse(script)  # Ultralytics exec()s this text when the images are missing
    imported = [
        (node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
    ]
    assert imported, "the script should call attnyolo's prepare function"
    for module, name in imported:
        assert callable(getattr(__import__(module, fromlist=[name]), name)), f"{module}.{name}"
    # Run it with the download itself replaced: it must hand the dataset root to the prepare function.
    calls = []
    for _, name in imported:
        monkeypatch.setattr(downloads, name, lambda root, name=name: calls.append((name, Path(root))))
    root = REPO / "datasets-never-created"
    exec(compile(tree, str(path), "exec"), {"yaml": {**data, "path": root}})  # noqa: S102  (our own file)
    assert calls and all(str(root) in str(where) for _, where in calls)


@pytest.mark.parametrize("given", ["VOC.yaml", "voc.yaml", "data/VOC.yaml", "coco.yaml", "data/COCO.yaml"])
def test_bare_and_readme_names_mean_the_shipped_yamls(given, tmp_path, monkeypatch):
    from attnyolo.data.data_yaml import locate_data_yaml, shipped_data_yaml

    monkeypatch.chdir(tmp_path)  # a pip user's working directory: no data/ folder of ours
    expected = REPO / "data" / ("VOC.yaml" if "voc" in given.lower() else "coco.yaml")
    assert shipped_data_yaml(given) == expected
    assert locate_data_yaml(given) == str(expected)


def test_an_existing_file_or_another_folder_or_name_is_taken_as_given(tmp_path, monkeypatch):
    from attnyolo.data.data_yaml import locate_data_yaml, shipped_data_yaml

    monkeypatch.chdir(tmp_path)
    (tmp_path / "VOC.yaml").write_text("names: {0: mine}\n")
    assert shipped_data_yaml("VOC.yaml") is None and locate_data_yaml("VOC.yaml") == "VOC.yaml"
    assert shipped_data_yaml("elsewhere/VOC.yaml") is None
    assert shipped_data_yaml("coco8.yaml") is None  # Ultralytics' own names still reach Ultralytics


def test_training_on_voc_by_bare_name_uses_the_shipped_yaml_not_ultralytics(tmp_path, monkeypatch):
    # Ultralytics ships a VOC.yaml too, which drops VOC's difficult objects; the bare name must not reach it.
    from attnyolo.engine.trainer import check_data_source

    monkeypatch.chdir(tmp_path)
    assert check_data_source("VOC.yaml") == str(REPO / "data" / "VOC.yaml")


def test_evaluating_a_yaml_with_a_download_script_fetches_the_missing_split(tmp_path):
    # What val does with data/VOC.yaml before the dataset is on disk: the YAML's own download script runs (here a
    # local copy of the sample split stands in for the devkit download), then the split is evaluated.
    from attnyolo.data.sample import make_sample_dataset
    from attnyolo.evaluation.ground_truth import load_split

    sample_data = make_sample_dataset(tmp_path / "sample", n_train=1, n_val=5, imgsz=96, video=False)
    source = Path(sample_data).parent
    names = yaml.safe_load(Path(sample_data).read_text())["names"]
    script = (
        "import shutil\n"
        f"for sub in ('images/val', 'labels/val'):\n"
        f"    shutil.copytree({str(source)!r} + '/' + sub, str(yaml['path']) + '/' + sub)\n"
    )
    data = tmp_path / "fetched.yaml"
    root = tmp_path / "fetched"
    data.write_text(
        yaml.safe_dump(
            {"path": str(root), "train": "images/val", "val": "images/val", "names": names, "download": script}
        )
    )
    gt = load_split(data, "val")
    assert (root / "images" / "val").is_dir()
    assert len(gt.coco["images"]) == len(list((source / "images" / "val").iterdir()))


def test_evaluating_a_yaml_without_a_download_script_never_downloads(tmp_path):
    from attnyolo.evaluation.ground_truth import load_split

    data = tmp_path / "plain.yaml"
    data.write_text(
        yaml.safe_dump({"path": str(tmp_path / "none"), "train": "images/val", "val": "images/val", "names": {0: "a"}})
    )
    with pytest.raises(FileNotFoundError, match="plain.yaml"):
        load_split(data, "val")
