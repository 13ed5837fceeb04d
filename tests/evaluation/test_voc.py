"""PASCAL VOC protocol: expectations computed by hand from the devkit's definition."""

import pytest

from attnyolo.evaluation.voc import evaluate_voc, read_voc_xml, voc_ap

EXACT = 1e-9


def gt(cls, box, difficult=False):
    return {"class_id": cls, "bbox": box, "difficult": difficult}


def det(image_id, cls, score, box):
    return {"image_id": image_id, "class_id": cls, "score": score, "bbox": box}


# ----------------------------------------------------------------------------------------------------------- voc_ap
def test_voc_ap_known_curve():
    # Points (recall, precision): (.2, 1), (.4, 1), (.4, .5), (.8, .5).
    # 11-point: t = 0, .1, .2 -> max precision 1 (3 points); t = .3, .4 -> 1 (2 points, from recall .4);
    #   t = .5, .6, .7, .8 -> .5 (4 points; recall .8 reaches t = .8); t = .9, 1 -> 0. Sum 3 + 2 + 2 = 7 -> 7/11.
    # Area: envelope .2 -> 1, .4 -> 1, .8 -> .5; area = .2*1 + .2*1 + .4*.5 = 0.6.
    recall, precision = [0.2, 0.4, 0.4, 0.8], [1.0, 1.0, 0.5, 0.5]
    assert voc_ap(recall, precision, use_07_metric=True) == pytest.approx(7 / 11, abs=EXACT)
    assert voc_ap(recall, precision, use_07_metric=False) == pytest.approx(0.6, abs=EXACT)


def test_voc_ap_envelope_lifts_earlier_precision():
    # (.5, .5) then (1, 1): the envelope is 1 everywhere, so both metrics give 1 although precision starts at .5.
    assert voc_ap([0.5, 1.0], [0.5, 1.0], use_07_metric=False) == pytest.approx(1.0, abs=EXACT)
    assert voc_ap([0.5, 1.0], [0.5, 1.0], use_07_metric=True) == pytest.approx(1.0, abs=EXACT)


def test_voc_ap_recall_exactly_on_a_threshold_counts():
    # Recall 3/10 reaches t = 0.3 (recall >= t), so t = 0, .1, .2, .3 score 1: 4/11. Thresholds built as
    # np.arange(0, 1.1, 0.1) hold 0.30000000000000004 and would give 3/11.
    assert voc_ap([3 / 10], [1.0], use_07_metric=True) == pytest.approx(4 / 11, abs=EXACT)


def test_voc_ap_empty_curve_is_zero_and_bad_shapes_raise():
    assert voc_ap([], [], use_07_metric=True) == 0.0
    assert voc_ap([], [], use_07_metric=False) == 0.0
    with pytest.raises(ValueError, match="equal length"):
        voc_ap([0.1, 0.2], [1.0], use_07_metric=False)


# ------------------------------------------------------------------------------------------------------ evaluate_voc
def test_perfect_predictions_score_one():
    ground_truth = {
        "a": [gt(0, [10, 10, 60, 80]), gt(1, [100, 20, 180, 90]), gt(0, [200, 200, 260, 300])],
        "b": [gt(1, [0, 0, 30, 30])],
        "c": [],
    }
    detections = [det(i, o["class_id"], 0.9, o["bbox"]) for i, objects in ground_truth.items() for o in objects]
    result = evaluate_voc(ground_truth, detections, ["cat", "dog"])
    assert result["mAP50_11point"] == pytest.approx(1.0, abs=EXACT)
    assert result["mAP50_area"] == pytest.approx(1.0, abs=EXACT)
    assert result["per_class"]["cat"] == {"AP50_11point": 1.0, "AP50_area": 1.0, "num_gt": 2, "num_det": 2}
    assert result["per_class"]["dog"]["num_gt"] == 2


def hand_case():
    """1 class, 3 non-difficult boxes + 1 difficult box over 2 images, 5 detections (given out of score order)."""
    ground_truth = {
        "A": [
            gt(0, [0, 0, 99, 99]),  # g1
            gt(0, [200, 200, 299, 299]),  # g2, never detected
            gt(0, [400, 400, 499, 499], difficult=True),  # gD
        ],
        "B": [gt(0, [0, 0, 49, 49])],  # g3
    }
    detections = [
        det("B", 0, 0.5, [300, 300, 349, 349]),  # d5: overlaps nothing -> FP
        det("A", 0, 0.8, [5, 5, 99, 99]),  # d2: IoU with g1 = 95*95 / (100*100) = .9025, g1 taken -> duplicate FP
        det("A", 0, 0.9, [0, 0, 99, 99]),  # d1: g1 -> TP
        det("B", 0, 0.6, [0, 0, 49, 49]),  # d4: g3 -> TP
        det("A", 0, 0.7, [400, 400, 499, 499]),  # d3: difficult gD -> ignored
    ]
    return ground_truth, detections


def test_hand_built_case():
    # Score order d1 .9 TP, d2 .8 FP (duplicate), d3 .7 ignored, d4 .6 TP, d5 .5 FP; 3 non-difficult GT.
    # Points (cumTP/3, cumTP/(cumTP+cumFP)): (1/3, 1), (1/3, 1/2), (1/3, 1/2), (2/3, 2/3), (2/3, 1/2).
    # 11-point: t = 0, .1, .2, .3 -> 1 (4 points); t = .4, .5, .6 -> 2/3 (3 points); t >= .7 -> 0.
    #   AP = (4 + 3 * 2/3) / 11 = 6/11 = 0.545454...
    # Area: envelope 1 on (0, 1/3], 2/3 on (1/3, 2/3], 0 on (2/3, 1]. AP = 1/3 + 2/9 = 5/9 = 0.555555...
    # Counting d3 as FP would give 11-point (4 + 3 * 1/2) / 11 = 1/2; counting d2 as TP would raise recall to 1.
    ground_truth, detections = hand_case()
    result = evaluate_voc(ground_truth, detections, ["cat"])
    cat = result["per_class"]["cat"]
    assert cat["AP50_11point"] == pytest.approx(6 / 11, abs=EXACT)
    assert cat["AP50_area"] == pytest.approx(5 / 9, abs=EXACT)
    assert cat["num_gt"] == 3
    assert cat["num_det"] == 5
    assert result["mAP50_11point"] == pytest.approx(6 / 11, abs=EXACT)
    assert result["mAP50_area"] == pytest.approx(5 / 9, abs=EXACT)


def test_plus_one_pixel_convention_decides_the_match():
    # GT [0, 0, 9, 9], detection [0, 0, 13, 13]. With +1: 10*10 / (14*14) = 100/196 = 0.5102 > .5 -> TP, AP 1.
    # Without: 9*9 / (13*13) = 81/169 = 0.4793 -> it would be an FP, AP 0.
    result = evaluate_voc({"i": [gt(0, [0, 0, 9, 9])]}, [det("i", 0, 0.9, [0, 0, 13, 13])], ["cat"])
    assert result["per_class"]["cat"]["AP50_area"] == pytest.approx(1.0, abs=EXACT)
    assert result["per_class"]["cat"]["AP50_11point"] == pytest.approx(1.0, abs=EXACT)


def test_iou_must_exceed_the_threshold():
    # GT [0, 0, 9, 9] (100 px), detection [0, 0, 9, 19] (200 px) containing it: IoU = 100/200 = 0.5 exactly,
    # not > 0.5 -> FP, AP 0.
    result = evaluate_voc({"i": [gt(0, [0, 0, 9, 9])]}, [det("i", 0, 0.9, [0, 0, 9, 19])], ["cat"])
    assert result["per_class"]["cat"]["AP50_area"] == 0.0
    assert result["per_class"]["cat"]["AP50_11point"] == 0.0


def test_detection_judged_against_its_best_overlap_only():
    # Detection [3, 0, 99, 99] (97*100 px) lies inside difficult gD [0, 0, 99, 99]: IoU 9700/10000 = .97. It also
    # overlaps plain g [10, 0, 109, 99]: 90*100 / (9700 + 10000 - 9000) = 0.841 > .5. The devkit looks only at the
    # best overlap, gD, so the detection is ignored: recall stays 0 and AP is 0 (matching g would give AP 1).
    ground_truth = {"i": [gt(0, [0, 0, 99, 99], difficult=True), gt(0, [10, 0, 109, 99])]}
    result = evaluate_voc(ground_truth, [det("i", 0, 0.9, [3, 0, 99, 99])], ["cat"])
    assert result["per_class"]["cat"]["AP50_area"] == 0.0
    assert result["per_class"]["cat"]["AP50_11point"] == 0.0


def test_class_without_non_difficult_gt_is_excluded_from_the_mean():
    ground_truth, detections = hand_case()
    ground_truth["B"].append(gt(1, [100, 100, 140, 140], difficult=True))  # dog: only a difficult box
    ground_truth["B"].append(gt(2, [200, 0, 240, 40]))  # bird: never detected -> AP 0, counted in the mean
    detections.append(det("B", 1, 0.9, [100, 100, 140, 140]))
    result = evaluate_voc(ground_truth, detections, ["cat", "dog", "bird"])
    assert result["per_class"]["dog"] == {"AP50_11point": None, "AP50_area": None, "num_gt": 0, "num_det": 1}
    assert result["per_class"]["bird"]["AP50_area"] == 0.0
    # mean over cat and bird only
    assert result["mAP50_11point"] == pytest.approx((6 / 11 + 0) / 2, abs=EXACT)
    assert result["mAP50_area"] == pytest.approx((5 / 9 + 0) / 2, abs=EXACT)


def test_bad_inputs_raise_with_the_offending_entry():
    ground_truth = {"i": [gt(0, [0, 0, 9, 9])]}
    with pytest.raises(ValueError, match="not in ground_truth.*'j'"):
        evaluate_voc(ground_truth, [det("j", 0, 0.9, [0, 0, 9, 9])], ["cat"])
    with pytest.raises(ValueError, match=r"detections\[0\].*class_id"):
        evaluate_voc(ground_truth, [det("i", 3, 0.9, [0, 0, 9, 9])], ["cat"])
    with pytest.raises(ValueError, match=r"detections\[0\].*bbox"):
        evaluate_voc(ground_truth, [det("i", 0, 0.9, [0, 0, 9])], ["cat"])
    with pytest.raises(ValueError, match=r"detections\[0\] lacks \['score'\]"):
        evaluate_voc(ground_truth, [{"image_id": "i", "class_id": 0, "bbox": [0, 0, 9, 9]}], ["cat"])


# ------------------------------------------------------------------------------------------------------ read_voc_xml
VOC_XML = """<annotation>
    <folder>VOC2007</folder>
    <filename>000001.jpg</filename>
    <size><width>353</width><height>500</height><depth>3</depth></size>
    <object>
        <name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
        <bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox>
    </object>
    <object>
        <name>person</name><pose>Left</pose><truncated>1</truncated><difficult>1</difficult>
        <bndbox><xmin>8</xmin><ymin>12</ymin><xmax>352.5</xmax><ymax>498</ymax></bndbox>
    </object>
    <object>
        <name> cat </name>
        <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox>
    </object>
</annotation>
"""


def test_read_voc_xml(tmp_path):
    path = tmp_path / "000001.xml"
    path.write_text(VOC_XML)
    assert read_voc_xml(path) == [
        {"name": "dog", "bbox": [48.0, 240.0, 195.0, 371.0], "difficult": False},
        {"name": "person", "bbox": [8.0, 12.0, 352.5, 498.0], "difficult": True},
        {"name": "cat", "bbox": [1.0, 2.0, 3.0, 4.0], "difficult": False},  # no <difficult> tag -> False
    ]


def test_read_voc_xml_malformed(tmp_path):
    truncated = tmp_path / "truncated.xml"
    truncated.write_text(VOC_XML[:200])
    with pytest.raises(ValueError, match=r"truncated\.xml: not well-formed XML"):
        read_voc_xml(truncated)

    no_box = tmp_path / "no_box.xml"
    no_box.write_text("<annotation><object><name>dog</name></object></annotation>")
    with pytest.raises(ValueError, match=r"no_box\.xml: <object> #0 \('dog'\) has no <bndbox>"):
        read_voc_xml(no_box)

    bad_number = tmp_path / "bad_number.xml"
    bad_number.write_text(VOC_XML.replace("<xmax>195</xmax>", "<xmax>abc</xmax>"))
    with pytest.raises(ValueError, match=r"bad_number\.xml: <object> #0 \('dog'\): <bndbox><xmax> is 'abc'"):
        read_voc_xml(bad_number)
