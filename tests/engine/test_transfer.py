"""Row-aligned pretrained transfer: a stock checkpoint into an attention variant."""

import torch
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel

import attnyolo
from attnyolo.engine.transfer import transfer_by_rows


def stock_checkpoint(tmp_path, name="yolov8n.yaml"):
    """A stock Ultralytics checkpoint made locally (no download): random weights saved in Ultralytics' format."""
    yolo = YOLO(name)
    for p in yolo.model.parameters():  # distinctive values, so a copied tensor is recognisable
        p.data.uniform_(-1, 1)
    path = tmp_path / name.replace(".yaml", ".pt")
    yolo.save(path)
    return path


def test_stock_weights_land_on_the_aligned_rows(tmp_path):
    src = YOLO(str(stock_checkpoint(tmp_path))).model.float()
    dst = DetectionModel("yolov8n-CoordAtt.yaml", verbose=False)
    attn_tensors = sum(len(m.state_dict()) for m in dst.modules() if isinstance(m, attnyolo.CoordAtt))
    report = transfer_by_rows(dst, src)
    assert report.total == len(dst.state_dict())
    assert report.transferred == report.total - attn_tensors
    assert all(".bn1." in s or ".conv" in s for s in report.skipped)
    assert len(report.skipped) == attn_tensors
    # stock row 5 (P4 downsample Conv) is row 6 of the attention model (one row inserted after P3), stock row 7
    # (P5 downsample) is row 9 (two rows inserted)
    torch.testing.assert_close(dst.model[6].conv.weight, src.model[5].conv.weight)
    torch.testing.assert_close(dst.model[9].conv.weight, src.model[7].conv.weight)
    torch.testing.assert_close(dst.model[25].cv2[0][0].conv.weight, src.model[22].cv2[0][0].conv.weight)
    assert "transferred" in report.summary() and f"{report.transferred}/{report.total}" in report.summary()


def test_key_based_transfer_is_what_we_fix(tmp_path):
    """Ultralytics' own transfer matches by key and misses most tensors after an inserted row."""
    src = YOLO(str(stock_checkpoint(tmp_path))).model.float()
    by_key = DetectionModel("yolov8n-CoordAtt.yaml", verbose=False)
    by_key.load(src, verbose=False)
    by_rows = DetectionModel("yolov8n-CoordAtt.yaml", verbose=False)
    transfer_by_rows(by_rows, src)
    same = lambda a, b: sum(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))  # noqa: E731
    fresh = DetectionModel("yolov8n-CoordAtt.yaml", verbose=False)
    # count tensors that differ from a fresh model's initial values: the ones that really received weights
    moved_key = len(fresh.state_dict()) - same(by_key, fresh)
    moved_rows = len(fresh.state_dict()) - same(by_rows, fresh)
    assert moved_rows > moved_key
    # the P4 downsample conv (stock row 5, attention row 6) is exactly where key matching goes wrong
    assert not torch.equal(by_key.model[6].conv.weight, src.model[5].conv.weight)
    torch.testing.assert_close(by_rows.model[6].conv.weight, src.model[5].conv.weight)


def test_attention_to_attention_and_different_nc(tmp_path):
    src = DetectionModel("yolo11n-ELA-S.yaml", verbose=False)
    for p in src.parameters():
        p.data.uniform_(-1, 1)
    dst = DetectionModel("yolo11n-ELA-S.yaml", nc=3, verbose=False)
    report = transfer_by_rows(dst, src)
    # everything but the class-count-dependent last convs of the classification branch transfers
    assert report.skipped and all("cv3" in s and "shape" in s for s in report.skipped)
    torch.testing.assert_close(dst.model[5].conv.weight, src.model[5].conv.weight)
    # a different attention kind at the same place does not receive ELA weights
    other = DetectionModel("yolo11n-CoordAtt.yaml", verbose=False)
    report = transfer_by_rows(other, src)
    assert any(s.startswith("model.5.") and "no matching source row" in s for s in report.skipped)


def test_transfer_rejects_non_models():
    import pytest

    with pytest.raises(TypeError, match="not an Ultralytics model"):
        transfer_by_rows(DetectionModel("yolov8n.yaml", verbose=False), torch.nn.Linear(2, 2))
