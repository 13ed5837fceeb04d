"""End to end with real training: AP over exactly the evaluated images, interrupts, full disks (all slow).

Interrupts and failures are injected with hooks at a known point (after the first checkpoint write), never with
timing.
"""

import errno
import json
import shutil
from pathlib import Path

import pytest
import yaml

from attnyolo.commands import run
from attnyolo.data.sample import make_sample_dataset
from attnyolo.evaluation.validator import validate_model

TINY = ["imgsz=64", "batch=4", "workers=0", "device=cpu", "plots=False"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Six val images (000002 to 000007) that are also the training images, so that a short run learns them."""
    data = make_sample_dataset(tmp_path_factory.mktemp("e2e-data"), n_train=1, n_val=6, imgsz=96, video=False)
    data.write_text(yaml.safe_dump({**yaml.safe_load(data.read_text()), "train": "images/val"}))
    return data


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """best.pt of a short real training run that finds some of the shapes (AP50 about 0.1; measured 25 s)."""
    project = tmp_path_factory.mktemp("e2e-runs")
    recipe = ["epochs=30", "batch=2", "nbs=2", "optimizer=AdamW", "lr0=0.003", "warmup_epochs=1", "mosaic=0"]
    argv = ["model=yolov8n.yaml", f"data={dataset}", *TINY, *recipe, f"project={project}", "evaluate=False"]
    run("train", argv)
    return next(project.glob("*/weights/best.pt"))


def copy_dataset(data_yaml, dst):
    shutil.copytree(data_yaml.parent, dst)
    for cache in dst.glob("labels/*.cache"):
        cache.unlink()
    data = {**yaml.safe_load(data_yaml.read_text()), "path": str(dst)}
    (dst / "data.yaml").write_text(yaml.safe_dump(data))
    return dst / "data.yaml"


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["label line with class 7 of 3", "corrupt image"])
def test_model_ap_equals_the_ap_without_the_dropped_image(trained, dataset, tmp_path, fault):
    victim = "000002"  # the first val image
    faulty = copy_dataset(dataset, tmp_path / "faulty")
    if fault == "corrupt image":
        (faulty.parent / "images" / "val" / f"{victim}.jpg").write_bytes(b"\xff\xd8 not a whole jpeg")
    else:
        label = faulty.parent / "labels" / "val" / f"{victim}.txt"
        label.write_text(label.read_text() + "7 0.5 0.5 0.1 0.1\n")
    removed = copy_dataset(dataset, tmp_path / "removed")
    for path in [*removed.parent.glob(f"*/val/{victim}.*"), removed.parent / "Annotations" / f"{victim}.xml"]:
        path.unlink()
    # batch=1: every image is run alone, so no other image's padding changes its detections.
    settings = {"imgsz": 64, "batch": 1, "device": "cpu", "project": str(tmp_path / "runs")}
    with pytest.warns(UserWarning, match=f"{victim}.jpg: dropped from the evaluation"):
        got, run_dir = validate_model(trained, faulty, name="faulty", **settings)
    expected, _ = validate_model(trained, removed, name="removed", **settings)
    assert expected["coco"]["AP50"] > 0  # a model that finds objects, so equal APs say something
    assert got["coco"] == expected["coco"] and got["voc"] == expected["voc"] and got["images"] == 5
    assert [Path(d["image"]).name for d in got["dropped_images"]] == [f"{victim}.jpg"]
    assert json.loads((run_dir / "metrics.json").read_text())["dropped_images"] == got["dropped_images"]


@pytest.mark.slow
def test_training_with_a_corrupt_val_image_still_writes_metrics(dataset, tmp_path, capsys):
    data = copy_dataset(dataset, tmp_path / "data")
    (data.parent / "images" / "val" / "000003.jpg").write_bytes(b"\xff\xd8 half")
    with pytest.warns(UserWarning, match="000003.jpg: dropped from the evaluation"):
        run("train", ["model=yolov8n.yaml", f"data={data}", "epochs=1", *TINY, f"project={tmp_path / 'runs'}"])
    out = capsys.readouterr().out
    metrics = json.loads(next((tmp_path / "runs").glob("*/metrics.json")).read_text())
    assert metrics["images"] == 5 and Path(metrics["dropped_images"][0]["image"]).name == "000003.jpg"
    assert "dropped: 1 image(s) Ultralytics' validator does not evaluate" in out


@pytest.mark.slow
def test_ctrl_c_after_a_checkpoint_then_resume_true_finishes(dataset, tmp_path, capsys, monkeypatch):
    from attnyolo.engine.trainer import AttnDetectionTrainer

    save = AttnDetectionTrainer.save_model

    def save_then_interrupt(self):
        save(self)
        raise KeyboardInterrupt  # the user presses Ctrl-C right after epoch 1 was saved

    monkeypatch.setattr(AttnDetectionTrainer, "save_model", save_then_interrupt)
    project = tmp_path / "runs"
    argv = ["model=yolov8n.yaml", f"data={dataset}", "epochs=2", *TINY, f"project={project}", "evaluate=False"]
    with pytest.raises(SystemExit) as done:
        run("train", argv)
    last = next(project.glob("*/weights/last.pt"))
    assert done.value.code == 130
    assert capsys.readouterr().err.endswith(
        f"error: interrupted; continue the run with: attnyolo train resume={last}\n"
    )

    monkeypatch.setattr(AttnDetectionTrainer, "save_model", save)
    run("train", ["resume=True", f"project={project}", "evaluate=False"])
    out = capsys.readouterr().out
    assert f"resuming {last} after epoch 1 (the newest interrupted run under {project})" in out
    rows = (last.parents[1] / "results.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2]


@pytest.mark.slow
def test_full_disk_while_saving_a_checkpoint_is_one_line_and_leaves_no_temporary(
    dataset, tmp_path, capsys, monkeypatch
):
    real = Path.write_bytes

    def write_bytes(self, data):
        if self.name.startswith(".last.pt."):  # the trainer's atomic write of last.pt
            real(self, data[: len(data) // 2])  # the disk fills up half way
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    project = tmp_path / "runs"
    with pytest.raises(SystemExit) as done:
        run("train", ["model=yolov8n.yaml", f"data={dataset}", "epochs=1", *TINY, f"project={project}"])
    err = capsys.readouterr().err
    weights = next(project.glob("*/weights"))
    assert done.value.code == 1 and err.count("error: ") == 1 and "Traceback" not in err
    assert f"error: cannot write {weights / 'last.pt'}: the disk is full (ENOSPC)." in err
    assert sorted(p.name for p in weights.iterdir()) == []  # no truncated last.pt and no temporary file


@pytest.mark.slow
def test_a_plot_that_cannot_be_written_is_one_warning_and_the_run_finishes(dataset, tmp_path, capsys, monkeypatch):
    real = Path.write_bytes

    def write_bytes(self, data):
        if self.name.startswith(".train_batch0.jpg."):  # the atomic write of Ultralytics' first batch mosaic
            real(self, data[: len(data) // 2])  # the disk fills up half way
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    project = tmp_path / "runs"
    argv = ["model=yolov8n.yaml", f"data={dataset}", "epochs=1", *TINY[:-1], "plots=True", f"project={project}"]
    with pytest.warns(UserWarning) as caught:
        run("train", [*argv, "evaluate=False"])
    run_dir = next(project.iterdir())
    assert [str(w.message) for w in caught if "cannot write" in str(w.message)] == [
        f"cannot write {run_dir / 'train_batch0.jpg'}: the disk is full (ENOSPC). Fix: free some space, or write "
        "elsewhere with project= (out= for data tools)."
    ]
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception in thread" not in err  # the plot thread printed nothing
    assert not (run_dir / "train_batch0.jpg").exists() and (run_dir / "weights" / "last.pt").is_file()
    assert (run_dir / "BoxPR_curve.png").stat().st_size > 0  # the other plots were written
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary file left
