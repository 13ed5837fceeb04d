"""resume=True continues the newest run that did not finish, and Ctrl-C advises what will actually work.

Checkpoints here carry the keys Ultralytics' ``BaseTrainer.save_model`` writes (a resumable ``last.pt``: epoch >= 0
and optimizer state) or those its final ``strip_optimizer`` leaves (a finished run: epoch -1, no optimizer).
"""

import os
import warnings
from types import SimpleNamespace

import pytest
import torch
import yaml
from ultralytics.engine.model import Model
from ultralytics.nn.tasks import DetectionModel

from attnyolo.commands import run
from attnyolo.data.sample import make_sample_dataset
from attnyolo.engine.runs import FINISHED, latest_interrupted_checkpoint, resumable_epoch, run_epoch

TINY = {"nc": 2, "backbone": [[-1, 1, "Conv", [8, 3, 2]]], "head": [[[0], 1, "Detect", ["nc"]]]}


def write_run(project, name, epoch, mtime):
    """A run folder with weights/last.pt (resumable when epoch >= 0) and weights/best.pt."""
    weights = project / name / "weights"
    weights.mkdir(parents=True)
    model = DetectionModel(dict(TINY), verbose=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01).state_dict() if epoch >= 0 else None
    for file in ("last.pt", "best.pt"):
        torch.save({"epoch": epoch, "ema": model, "model": None, "optimizer": optimizer}, weights / file)
        os.utime(weights / file, (mtime, mtime))
    return weights / "last.pt"


def test_resume_takes_the_newest_run_that_did_not_finish(tmp_path):
    older_interrupted = write_run(tmp_path, "a", epoch=4, mtime=1_000)
    finished = write_run(tmp_path, "b", epoch=-1, mtime=2_000)  # newer, but finished
    (tmp_path / "c" / "weights").mkdir(parents=True)
    damaged = tmp_path / "c" / "weights" / "last.pt"
    damaged.write_bytes(b"killed while writing")  # newest, damaged
    assert latest_interrupted_checkpoint(tmp_path) == older_interrupted
    assert resumable_epoch(older_interrupted) == run_epoch(older_interrupted) == 4
    # neither can be resumed, but a finished run is told apart from a damaged file (the ablation scores the first)
    assert resumable_epoch(finished) is None and run_epoch(finished) == FINISHED == -1
    assert resumable_epoch(damaged) is None and run_epoch(damaged) is None


def test_resume_with_only_finished_runs_is_one_line(tmp_path, capsys):
    write_run(tmp_path, "a", epoch=-1, mtime=1_000)
    newest = write_run(tmp_path, "b", epoch=-1, mtime=2_000)
    with pytest.raises(SystemExit) as done:
        run("train", ["resume=True", f"project={tmp_path}"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and err.count("\n") == 1
    assert f"resume=True found no interrupted run under {tmp_path}: all 2 runs there finished (newest: {newest})" in err


@pytest.fixture
def interrupted_training(monkeypatch, tmp_path):
    """Make `attnyolo train` stop with Ctrl-C after writing a last.pt of the given epoch (None: nothing written)."""
    data = make_sample_dataset(tmp_path / "data", n_train=1, n_val=1, imgsz=64, video=False)
    weights = tmp_path / "runs" / "exp" / "weights"
    state = {"epoch": None}

    def train(self, **kwargs):  # stands in for Ultralytics' training, interrupted by the user
        self.trainer = SimpleNamespace(last=weights / "last.pt", best=weights / "best.pt", args=SimpleNamespace())
        if state["epoch"] is not None:
            write_run(tmp_path / "runs", "exp", state["epoch"], 1_000)
        raise KeyboardInterrupt

    monkeypatch.setattr(Model, "train", train)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return state, weights, data, [f"model={tmp_path / 'tiny.yaml'}", f"data={data}", f"project={tmp_path / 'runs'}"]


@pytest.mark.parametrize(
    ("epoch", "advice"),
    [
        (2, "continue the run with: attnyolo train resume={last}"),
        (-1, "training had finished; score it with: attnyolo val model={best} data={data}"),
        (None, "no checkpoint was written yet; start the run again"),
    ],
    ids=["mid-training", "final-evaluation", "before-the-first-epoch"],
)
def test_ctrl_c_advises_what_will_work(interrupted_training, epoch, advice, capsys):
    state, weights, data, argv = interrupted_training
    state["epoch"] = epoch
    with pytest.raises(SystemExit) as done:
        run("train", argv)
    err = capsys.readouterr().err
    expected = advice.format(last=weights / "last.pt", best=weights / "best.pt", data=data)
    assert done.value.code == 130 and err == f"error: interrupted; {expected}\n"


def test_ctrl_c_in_a_tool_without_advice_says_only_interrupted(capsys, monkeypatch):
    from attnyolo.commands import model_info

    monkeypatch.setattr(model_info, "model_summary", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(SystemExit) as done:
        run("model_info", ["model=yolov8n.yaml"])  # never built: the summary is interrupted first
    assert done.value.code == 130 and capsys.readouterr().err == "error: interrupted\n"


def test_settings_given_with_resume_are_named_in_one_warning(tmp_path, monkeypatch, capsys):
    last = write_run(tmp_path, "exp", epoch=2, mtime=1_000)

    def train(self, **kwargs):  # Ultralytics resumes with the checkpoint's own arguments; stopped here
        raise KeyboardInterrupt

    monkeypatch.setattr(Model, "train", train)
    with pytest.warns(UserWarning) as caught, pytest.raises(SystemExit):
        run("train", ["resume=True", f"project={tmp_path}", "epochs=1", "lr0=0.1"])
    assert [str(w.message) for w in caught if "resume" in str(w.message)] == [
        f"resume ignores epochs=1, lr0=0.1: a resumed run continues with the settings saved in {last}. Fix: leave "
        "them out, or start a new run (model=<its last.pt> to fine-tune from it) to change them."
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # project= alone selects the run: nothing to warn about
        with pytest.raises(SystemExit):
            run("train", ["resume=True", f"project={tmp_path}"])


@pytest.mark.parametrize("others", [0, 2])
def test_resume_tells_a_damaged_last_pt_from_a_finished_run(others, tmp_path, capsys):
    for index in range(others):
        write_run(tmp_path, f"finished{index}", epoch=-1, mtime=1_000 + index)
    whole = write_run(tmp_path, "cut", epoch=3, mtime=5_000)
    data = whole.read_bytes()
    whole.write_bytes(data[: len(data) // 2])  # a last.pt cut short
    with pytest.raises(SystemExit) as done:
        run("train", ["resume=True", f"project={tmp_path}"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and err.count("\n") == 1 and "finished (newest" not in err, err
    assert err.startswith(
        f"error: resume=True found no run under {tmp_path} that can be resumed: {whole} (the newest run that did not "
        "finish) is damaged (the file is empty, truncated or corrupted (BadZipFile: "
    ), err
    assert "so its run was interrupted but cannot continue from it" in err
    assert ("; 2 other run(s) finished. Fix: " in err) == (others == 2)
