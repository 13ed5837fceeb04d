"""benchmark_track (models/analysis/tracking.py): both modes over the same frames, interleaved; no speed asserted."""

import pytest

from attnyolo.analysis.tracking import CLOCKS, MODES, format_track_overhead, track_overhead
from attnyolo.data.sample import write_sample_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "sample.mp4"
    write_sample_video(path)
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained stock-layer detector (no fused-kernel build), saved as Ultralytics saves checkpoints."""
    import yaml
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("tiny")
    cfg = {
        "nc": 3,
        "backbone": [[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "Conv", [16, 3, 2]]],
        "head": [[[1], 1, "Detect", ["nc"]]],
    }
    (folder / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    YOLO(folder / "tiny.yaml").save(folder / "tiny.pt")
    return folder / "tiny.pt"


def test_both_modes_time_every_frame_after_the_first_with_both_clocks(tiny_model, video):
    result = track_overhead(tiny_model, video, tracker="bytetrack.yaml", rounds=1, imgsz=64)
    assert result["frames"] == {"predict": 29, "track": 29}  # 30 frames, the first of each pass left out
    for clock in CLOCKS:
        for mode in MODES:
            median, q1, q3 = result[clock]["ms"][mode]
            assert 0 < q1 <= median <= q3
        low, high = result[clock]["overhead_range"]
        assert low <= result[clock]["overhead"] <= high
    assert result["settings"] == {"imgsz": 64, "conf": 0.1}  # the same settings for both modes, nothing saved
    table = format_track_overhead(result)
    assert "| wall |" in table and "| cpu |" in table and "bytetrack.yaml" in table


def test_rounds_must_be_positive(tiny_model, video):
    with pytest.raises(ValueError, match="rounds=0 must be >= 1"):
        track_overhead(tiny_model, video, rounds=0)
