"""``attnyolo track`` end to end: ids that follow the sample video's true shapes, files real readers parse, failures.

The sample video's generator knows where each moving shape is in every frame (``sample_video_truth``). Tracks are
matched to those true boxes frame by frame (Hungarian assignment on IoU >= 0.5, scipy and torchvision, independent of
Ultralytics' matching), and each true object's ids are counted.
"""

import csv
import json
import sys
from collections import Counter

import cv2
import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou

from attnyolo.data.sample import sample_video_truth, write_sample_video
from attnyolo.engine.predict import open_model
from attnyolo.engine.track import track

IOU_MATCH = 0.5  # MOTChallenge's CLEAR MOT threshold (Bernardin & Stiefelhagen 2008; Milan et al. 2016, sec. 4.1.3)


def identity_report(truth, rows) -> list[dict]:
    """Per true object: visible frames, frames matched to a track, id switches, and the share of its dominant id.

    Args:
        truth: ``sample_video_truth`` (per 0-based frame, per object, a box or None).
        rows: MOT rows ``frame, id, x, y, w, h, ...`` (frames from 1).

    Returns:
        One dict per true object: ``visible``, ``matched``, ``ids`` (matched id per frame, in order), ``switches``
        (changes of the matched id between consecutive matched frames, as CLEAR MOT counts them), ``dominant_share``
        (frames matched to its most frequent id / visible frames).
    """
    n = len(truth[0])
    matched = [[] for _ in range(n)]
    visible = [0] * n
    for frame, objects in enumerate(truth, start=1):
        present = [(i, o) for i, o in enumerate(objects) if o is not None]
        for i, _ in present:
            visible[i] += 1
        tracks = rows[rows[:, 0] == frame] if len(rows) else rows
        if not present or not len(tracks):
            continue
        true_boxes = torch.tensor([[o.x0, o.y0, o.x1, o.y1] for _, o in present], dtype=torch.float64)
        xywh = torch.as_tensor(tracks[:, 2:6], dtype=torch.float64)
        iou = box_iou(true_boxes, torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)).numpy()
        for t, k in zip(*linear_sum_assignment(-iou)):
            if iou[t, k] >= IOU_MATCH:
                matched[present[t][0]].append(int(tracks[k, 1]))
    report = []
    for i in range(n):
        ids = matched[i]
        dominant = Counter(ids).most_common(1)[0][1] if ids else 0
        report.append(
            {
                "visible": visible[i],
                "matched": len(ids),
                "ids": ids,
                "switches": sum(a != b for a, b in zip(ids, ids[1:])),
                "dominant_share": dominant / max(visible[i], 1),
            }
        )
    return report


@pytest.fixture(scope="module")
def detector(tmp_path_factory, tool):
    """``python tools/train.py epochs=10``: the default model, recipe and sample dataset (generated in the run's
    folder, with the sample video of seed 0), 10 of the default 15 epochs: enough to find the video's shapes."""
    folder = tmp_path_factory.mktemp("track-train")
    r = tool("train", "epochs=10", "evaluate=False", f"project={folder / 'runs'}", cwd=folder, timeout=3600)
    assert r.returncode == 0, r.stderr[-4000:]
    return next((folder / "runs").glob("*/weights/best.pt")), folder / "data" / "sample" / "sample.mp4"


@pytest.mark.slow
@pytest.mark.parametrize("tracker", ["botsort.yaml", "bytetrack.yaml"])
def test_track_keeps_one_id_per_true_shape_and_writes_readable_files(detector, tracker, tmp_path, tool):
    best, video = detector
    args = (f"model={best}", f"source={video}", f"tracker={tracker}", "imgsz=160", "device=cpu")
    r = tool("track", *args, f"project={tmp_path}", "name=run")
    assert r.returncode == 0, r.stderr[-4000:]
    run = tmp_path / "run"
    # The MOT file, as MOTChallenge's readers take it: ten comma-separated numbers per line.
    mot = run / "mot" / "sample.txt"
    rows = np.loadtxt(mot, delimiter=",", ndmin=2)
    assert rows.shape[1] == 10 and len(rows) > 0
    assert all(len(line) == 10 for line in csv.reader(mot.open()))
    assert (rows[:, 7:] == -1).all() and (rows[:, 0] == rows[:, 0].round()).all() and (rows[:, 1] >= 1).all()
    assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= 30 and (rows[:, 4:6] > 0).all()
    records = json.loads((run / "tracks.json").read_text())
    assert [r["frame"] for r in records] == list(range(1, 31))
    assert sum(len(r["ids"]) for r in records) == len(rows)
    # Identity: each true shape keeps one id over most of its frames.
    report = identity_report(sample_video_truth(seed=0), rows)
    print(tracker, [{k: v for k, v in o.items() if k != "ids"} for o in report])
    for obj in report:
        assert obj["dominant_share"] > 0.5, report
    # The annotated video: the input's size, frame count and frame rate, read back with OpenCV.
    out = next(p for p in run.iterdir() if p.suffix in {".avi", ".mp4"})
    cin, cout = cv2.VideoCapture(str(video)), cv2.VideoCapture(str(out))
    for prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS, cv2.CAP_PROP_FRAME_COUNT):
        assert cin.get(prop) == pytest.approx(cout.get(prop), rel=0.01), prop


@pytest.mark.slow
def test_persist_keeps_the_trackers_of_the_previous_call_as_ultralytics_does(detector, tmp_path):
    """Two calls on one loaded model: persist=False starts new trackers (ids from 1 again); persist=True continues the
    previous call's trackers, so the replayed video's shapes get new ids after the first call's."""
    best, video = detector
    ids = {}
    for persist in (False, True):
        model = open_model(best)
        for call in range(2):
            out = track(
                model,
                video,
                tracker="bytetrack.yaml",
                persist=persist,
                imgsz=160,
                save=False,
                project=str(tmp_path),
                name=f"{persist}{call}",
            )
            ids[persist, call] = {i for r in json.loads(out["json"].read_text()) for i in r["ids"]}
    assert ids[False, 0] and ids[False, 1] == ids[False, 0] == ids[True, 0]
    assert min(ids[True, 1]) > max(ids[True, 0])


# ------------------------------------------------------------------------------- fast: the pipeline and its failures
@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """The sample video (seed 0), without the image dataset."""
    path = tmp_path_factory.mktemp("video") / "sample.mp4"
    write_sample_video(path)
    return path


def test_untrained_model_tracks_through_the_video_and_writes_every_file(tiny_checkpoint, video, tmp_path, run_command):
    """The whole pipeline on a tiny untrained model (no tracks expected): video, MOT file and JSON are written."""
    r = run_command("track", f"model={tiny_checkpoint}", f"source={video}", "imgsz=64", f"project={tmp_path}")
    assert r.returncode == 0, r.stderr[-3000:]
    run = next(tmp_path.iterdir())
    assert (run / "mot" / "sample.txt").is_file() and f"{run / 'mot' / 'sample.txt'} (MOTChallenge)" in r.stdout
    assert len(json.loads((run / "tracks.json").read_text())) == 30
    out = next(p for p in run.iterdir() if p.suffix in {".avi", ".mp4"})
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 30 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10, rel=0.01)


def test_track_reads_checkpoints_as_predict_does(malicious_checkpoint, video, run_command):
    path, marker = malicious_checkpoint()
    r = run_command("track", f"model={path}", f"source={video}")
    assert r.returncode == 1 and not marker.exists()
    assert "trust_checkpoint=True" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tracker=nosuch.yaml"], "tracker=nosuch.yaml: no such file, and not one of Ultralytics' trackers"),
        (["trackr=bytetrack.yaml"], "Did you mean tracker"),
    ],
)
def test_bad_tracker_is_one_line(args, expected, tiny_checkpoint, video, run_command):
    r = run_command("track", f"model={tiny_checkpoint}", f"source={video}", *args)
    assert r.returncode != 0 and expected in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_missing_lap_is_one_line_before_anything_loads(tiny_checkpoint, video, monkeypatch, run_command):
    monkeypatch.setitem(sys.modules, "lap", None)  # import lap raises ImportError
    r = run_command("track", f"model={tiny_checkpoint}", f"source={video}")
    assert r.returncode == 1 and "pip install 'lap>=0.5.12'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
