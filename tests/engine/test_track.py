"""Tracking's checks and files (models/engine/track.py): tracker YAMLs read as data, lap, sources, the MOT text."""

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
import yaml
from ultralytics.engine.results import Results
from ultralytics.utils import ROOT

from attnyolo.engine import track as tracking
from attnyolo.errors import MissingDependencyError

STOCK = ROOT / "cfg" / "trackers"


def _user_tracker(tmp_path, base="bytetrack.yaml", **changes):
    cfg = {**yaml.safe_load((STOCK / base).read_text()), **changes}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if v is not ...}))
    return path


# ------------------------------------------------------------------------------------------------------- trackers
@pytest.mark.parametrize("name", ["botsort.yaml", "bytetrack.yaml"])
def test_stock_tracker_names_are_ultralytics_files(name):
    assert tracking.check_tracker(name) == STOCK / name
    assert tracking.DEFAULT_TRACKER == "botsort.yaml"


def test_users_tracker_yaml_with_ultralytics_keys_is_accepted(tmp_path):
    path = _user_tracker(tmp_path, "botsort.yaml", track_buffer=60, match_thresh=0.7, gmc_method="none")
    assert tracking.check_tracker(path) == path


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"track_bufer": 60}, "unknown key 'track_bufer' for tracker_type bytetrack. Did you mean track_buffer?"),
        ({"match_thresh": ...}, "missing match_thresh for tracker_type bytetrack. Fix: start from Ultralytics'"),
        ({"track_buffer": 2.5}, "track_buffer=2.5 must be a whole number >= 0 (Ultralytics' default: 30)"),
        ({"track_high_thresh": 1.5}, "track_high_thresh=1.5 must be a number from 0 to 1"),
        ({"fuse_score": "yes"}, "fuse_score='yes' must be true or false"),
        ({"tracker_type": "sort"}, "tracker_type 'sort' is not one of"),
    ],
)
def test_bad_tracker_yaml_is_one_line_naming_file_key_and_fix(tmp_path, changes, expected):
    path = _user_tracker(tmp_path, **changes)
    with pytest.raises(ValueError, match=r"^tracker=") as error:
        tracking.check_tracker(path)
    assert expected in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_tracker_yaml_is_read_as_data_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"tracker_type: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValueError, match="not a readable YAML file"):
        tracking.check_tracker(path)
    assert not marker.exists()


def test_unknown_tracker_name_lists_ultralytics_trackers(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tracker=nosuch.yaml: no such file.*botsort.yaml.*bytetrack.yaml"):
        tracking.check_tracker("nosuch.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        tracking.check_tracker(tmp_path / "list.yaml")


# ------------------------------------------------------------------------------------------------------------ lap
def test_missing_lap_is_one_line_not_an_install(monkeypatch):
    import ultralytics.utils.checks as checks

    monkeypatch.setitem(sys.modules, "lap", None)  # import lap raises ImportError
    monkeypatch.setattr(checks, "check_requirements", lambda *a, **k: pytest.fail("a run-time install was attempted"))
    with pytest.raises(MissingDependencyError) as error:
        tracking.require_lap()
    message = str(error.value)
    assert "lap>=0.5.12" in message and "is not installed" in message and "pip install 'lap>=0.5.12'" in message
    assert "\n" not in message


def test_lap_is_a_declared_dependency_and_installed():
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert f"lap{tracking.LAP_REQUIREMENT}" in pyproject["project"]["dependencies"]
    tracking.require_lap()  # this environment installed the declared dependencies


# -------------------------------------------------------------------------------------------------------- sources
def test_images_are_not_a_tracking_source(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((16, 16, 3), np.uint8))
    for source in (tmp_path / "a.jpg", tmp_path, tmp_path / "*.jpg"):
        with pytest.raises(ValueError, match="holds images .*run `attnyolo predict` on images"):
            tracking.check_video_source(source)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tracking.check_video_source(tmp_path / "missing.mp4")
    assert tracking.check_video_source("0") == "0" and tracking.check_video_source("rtsp://h/s") == "rtsp://h/s"


def test_sequence_names_are_file_safe():
    assert tracking.sequence_name("/videos/street cam.mp4") == "street_cam"
    assert tracking.sequence_name("0") == "0"
    assert tracking.sequence_name("rtsp://10.0.0.2:554/live") == "rtsp_10.0.0.2_554_live"


# ---------------------------------------------------------------------------------------------------- MOT records
def _tracked_result(path, rows):
    """A result as Ultralytics' tracker leaves it: boxes ``x1, y1, x2, y2, id, conf, cls``."""
    data = torch.tensor(rows, dtype=torch.float32).reshape(-1, 7)
    return Results(np.zeros((240, 320, 3), np.uint8), path, {0: "circle", 1: "rectangle"}, boxes=data)


def test_mot_text_is_motchallenge_rows_that_numpy_and_csv_read(tmp_path):
    recorder = tracking.TrackRecorder(vid_stride=2)
    recorder(_tracked_result("v.mp4", [[10, 20, 50, 80, 3, 0.9, 0], [100, 50, 140, 70, 7, 0.5, 1]]))
    recorder(_tracked_result("v.mp4", []))  # a frame without tracks still counts
    recorder(_tracked_result("v.mp4", [[12, 21, 52, 81, 3, 0.8, 0]]))
    untracked = Results(
        np.zeros((240, 320, 3), np.uint8), "v.mp4", {0: "c"}, boxes=torch.tensor([[1, 2, 3, 4, 0.9, 0]])
    )
    recorder(untracked)  # boxes a tracker passed on without ids are not tracks
    mot, json_path = recorder.write(tmp_path)
    assert mot == [tmp_path / "mot" / "v.txt"]
    rows = np.loadtxt(mot[0], delimiter=",", ndmin=2)
    # frame (k-th frame read with vid_stride 2 is the video's frame 2k), id, left, top, width, height, conf, -1 x3
    expected = [[2, 3, 10, 20, 40, 60, 0.9, -1, -1, -1], [2, 7, 100, 50, 40, 20, 0.5, -1, -1, -1]]
    expected.append([6, 3, 12, 21, 40, 60, 0.8, -1, -1, -1])
    np.testing.assert_allclose(rows, expected, atol=1e-4)
    assert [len(r) for r in csv.reader(io.StringIO(mot[0].read_text()))] == [10, 10, 10]
    records = json.loads(json_path.read_text())
    assert [r["frame"] for r in records] == [2, 4, 6, 8] and records[0]["ids"] == [3, 7] and records[3]["ids"] == []
    assert records[0]["names"] == ["circle", "rectangle"] and records[0]["boxes_xyxy"][1] == [100, 50, 140, 70]
    assert recorder.track_ids() == {3, 7}
