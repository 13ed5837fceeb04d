"""Every layer name the public YOLO attention forks write builds the layer the fork built, read as the fork reads it.

Each case is a row written the way a public repository writes it (its YAML convention and its parser's reading), in
a tiny model whose attention row receives 256 channels; the layer's parameter count is checked against the count
derived by hand from the public class's definition (tests/fixtures/fork_spellings/param_counts.json).
"""

import json
import logging
from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

import attnyolo  # noqa: F401  (registers the layers)
from attnyolo.analysis.summary import attention_placements
from attnyolo.errors import ModelConfigError
from attnyolo.layers.spellings import SPELLINGS, spelling_layer

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "fork_spellings" / "param_counts.json"
FORMS = json.loads(FIXTURE.read_text())["forms"]
ROW = 2  # index of the attention row in tiny_yaml()


def tiny_yaml(name: str, args: list, classic: bool = False, number: int = 1) -> dict:
    """A detector at width 0.25 whose row 2 gets 256 channels (Conv 1024 x 0.25), written as a fork would."""
    d = {
        "nc": 2,
        "depth_multiple": 0.33,
        "width_multiple": 0.25,
        "backbone": [
            [-1, 1, "Conv", [64, 3, 2]],
            [-1, 1, "Conv", [1024, 3, 2]],
            [-1, number, name, args],
            [-1, 1, "Conv", [256, 3, 2]],
            [-1, 1, "Conv", [256, 3, 2]],
        ],
        "head": [[[2, 3, 4], 1, "Detect", ["nc", "anchors"] if classic else ["nc"]]],
    }
    if classic:  # classic YOLOv5: anchor-based Detect (YOLOv5's P3-P5 anchors)
        d["anchors"] = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
    return d


def build(name: str, args: list, classic: bool = False, number: int = 1):
    model = DetectionModel(tiny_yaml(name, args, classic, number), verbose=False)
    return model, model.model[ROW]


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# (name, repository family, args as written there, form built, text of the warning or None)
CASES = [
    # SE: External-Attention-pytorch's SEAttention; yoloair passes [c1, *args[1:]]; YOLOv8 forks write [reduction]
    ("SEAttention", False, [1024], "se_bias_free_r16", None),
    ("SEAttention", True, [1024, 8], "se_bias_free_r8", None),
    ("SEAttention", False, [16], "se_bias_free_r16", "is read as reduction 16 of SEAttention(channel=512"),
    ("SEAttention", False, [256], "se_bias_free_r16", None),  # the real channel count, unscaled
    ("SEAttention", False, [1024, "paper"], "se_paper_r16", None),
    ("SE", True, [1024], "se_bias_free_r16", None),  # SE(c1, c2, ratio=16): [c2]
    ("SE", True, [1024, 2], "se_bias_free_r2", None),  # [c2, ratio]
    ("SE", False, [16], "se_bias_free_r16", "is read as reduction 16 of SE(c1, c2, ratio=16)"),
    ("SELayer", False, [1024], "se_bias_free_r16", None),
    ("SELayer", False, [], "se_bias_free_r16", None),
    ("SEBlock", False, [1024], "se_paper_r16", None),
    # CBAM: classic YOLOv5 forks' CBAM(c1, c2, ratio, kernel_size); Ultralytics' CBAM(c1, kernel_size) in v8/11 forks
    ("CBAM", True, [1024], "cbam_yolov5_r16_k7", None),
    ("CBAM", True, [1024, 16, 7], "cbam_yolov5_r16_k7", None),
    ("CBAM", False, [7], "cbam_ultralytics_k7", "is read as kernel_size 7 of CBAM(c1, kernel_size=7)"),
    ("CBAM", False, [1024, 3], "cbam_ultralytics_k3", None),
    ("CBAM", False, [1024], "cbam_ultralytics_k7", None),
    ("CBAM", False, [7, "paper"], "cbam_paper_r16_k7", "is read as kernel_size 7"),
    ("CBAMBlock", False, [1024], "cbamblock_r16_k49", None),
    ("CBAMBlock", False, [1024, 16, 7], "cbamblock_r16_k7", None),
    ("CBAMAttention", False, [1024], "cbam_paper_r16_k7", None),
    # ECA: External-Attention-pytorch's ECAAttention(kernel_size=3) (biased), ECANet's eca_layer, the forks' ECA
    ("ECAAttention", False, [1024], "eca_k3_bias", None),
    ("ECAAttention", False, [3], "eca_k3_bias", "is read as kernel_size 3 of ECAAttention(kernel_size=3)"),
    ("ECAAttention", False, [1024, "paper"], "eca_adaptive", None),
    ("ECA", True, [1024], "eca_k3", None),
    ("ECA", False, [1024, 5], "eca_k5", None),
    ("ECA", False, [3], "eca_k3", "is read as kernel_size 3 of ECA(c1, c2, k_size=3)"),
    ("eca_layer", False, [1024], "eca_k3", None),
    ("eca_layer", False, [], "eca_k3", None),
    ("ECALayer", False, [1024, 3], "eca_k3", None),
    # Coordinate Attention under its four names: [c], [c, r], [inp, oup] (real channels: that parser does not scale)
    ("CoordAtt", True, [1024], "coordatt_r32", None),
    ("CoordAtt", False, [256, 256], "coordatt_r32", "is read as [inp, oup]"),
    ("CA", True, [1024], "coordatt_r32", None),
    ("CoordAttention", True, [1024, 16], "coordatt_r16", None),
    ("CoordinateAttention", False, [1024], "coordatt_r32", None),
    ("CoordinateAttention", False, [256, 16], "coordatt_r16", None),
    # ELA: the widely copied ELA(channel, kernel_size=7) is ELA-B; variant letters and kernel 5 as before
    ("ELA", False, [1024], "ela_b", None),
    ("ELA", False, [1024, 7], "ela_b", None),
    ("ELA", False, [], "ela_b", None),
    ("ELA", False, [1024, "T"], "ela_t", None),
    ("ELA", False, [1024, "paper"], "ela_t", None),
    ("ELA", True, [1024, 5], "ela_t", "uses 16 groups"),
    ("EfficientLocalizationAttention", True, [1024], "ela_b", None),
]


@pytest.mark.parametrize(("name", "classic", "args", "form", "warning"), CASES)
def test_each_spelling_builds_the_forks_layer(name, classic, args, form, warning, caplog):
    with caplog.at_level(logging.WARNING, logger="attnyolo"):
        _, layer = build(name, args, classic)
    assert layer.channels == 256
    assert params(layer) == FORMS[form]["params"], FORMS[form]["derivation"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "attnyolo" and f"({name})" in r.getMessage()]
    if warning is None:
        assert not warnings
    else:
        assert len(warnings) == 1 and warning in warnings[0] and "\n" not in warnings[0]


def test_every_spelling_has_a_case():
    assert {s.name for s in SPELLINGS} == {case[0] for case in CASES}
    required = {"SE", "SELayer", "SEBlock", "SEAttention", "CBAM", "CBAMBlock", "CBAMAttention", "ECA"}
    required |= {"ECAAttention", "eca_layer", "ECALayer", "CA", "CoordAtt", "CoordAttention", "CoordinateAttention"}
    assert required | {"ELA", "EfficientLocalizationAttention"} <= {s.name for s in SPELLINGS}


def test_a_lone_reduction_warning_says_how_to_write_channels(caplog):
    with caplog.at_level(logging.WARNING, logger="attnyolo"):
        build("SEAttention", [16])
    (message,) = [r.getMessage() for r in caplog.records if "(SEAttention)" in r.getMessage()]
    assert "not as channels (256 enter this row)" in message and "write [256, ...] or [null, ...]" in message


def test_a_channel_count_that_is_also_a_reduction_warns_when_the_readings_differ(caplog):
    def row_with(channels: int, name: str, args: list):
        d = tiny_yaml(name, args)
        d["backbone"][1][3][0] = channels * 4  # Conv (4 x channels) x 0.25 = channels into the row
        return DetectionModel(d, verbose=False).model[ROW]

    with caplog.at_level(logging.WARNING, logger="attnyolo"):
        layer = row_with(16, "SEAttention", [16])  # reduction 16 would build the same layer: no warning
    assert layer.channels == 16 and layer.hidden == 1 and "(SEAttention)" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="attnyolo"):
        layer = row_with(32, "SEAttention", [32])  # channels 32 (hidden 2), not reduction 32 (hidden 1)
    assert layer.channels == 32 and layer.hidden == 2
    assert "is read as the channel count (32 channels enter this row). To mean reduction 32, write [null, 32]" in (
        caplog.text
    )


def test_a_number_that_is_neither_reading_is_refused_naming_both():
    with pytest.raises(ModelConfigError) as error:
        build("SEAttention", [512])  # 512 x 0.25 = 128 channels, not 256; too large for a reduction ratio
    message = str(error.value)
    assert "row 2 (SEAttention): 512 is not the 256 channels" in message and "reduction" in message
    assert "Fix:" in message and "\n" not in message


def test_the_variant_is_in_the_repr_and_the_model_summary():
    model, layer = build("SEAttention", [1024])
    assert "bias=False" in repr(layer) and layer.variant == "bias-free"
    assert attention_placements(model)[0]["layer"] == "SEAttention bias-free"
    model, layer = build("CBAM", [7])
    assert attention_placements(model)[0]["layer"] == "UltralyticsCBAM Ultralytics"
    model, layer = build("ELA", [1024])
    assert "variant=B" in repr(layer) and attention_placements(model)[0]["layer"] == "ELA B"
    _, layer = build("eca_layer", [])
    assert layer.variant == "k=3" and "kernel_size=3 (fixed)" in repr(layer)


def test_ultralytics_cbam_computes_what_ultralytics_cbam_computes():
    from ultralytics.nn.modules import CBAM

    _, layer = build("CBAM", [7])
    theirs = CBAM(256, 7)
    theirs.load_state_dict(layer.state_dict())  # same tensor names: the class is Ultralytics' own
    x = torch.randn(1, 256, 8, 8)
    assert torch.equal(layer.eval()(x), theirs.eval()(x))


def test_the_projects_own_kinds_keep_the_papers_forms():
    # `attention: SE` / `ECA` (and the model names built from them) are the papers' layers, whatever a raw row means
    for kind, form in (("SE", "se_paper_r16"), ("ECA", "eca_adaptive"), ("CBAM", "cbam_paper_r16_k7")):
        d = tiny_yaml("Attention", [1024])
        d["attention"] = kind
        layer = DetectionModel(d, verbose=False).model[ROW]
        assert params(layer) == FORMS[form]["params"] and getattr(layer, "variant", None) is None


def test_the_docs_table_counts_are_the_hand_derived_ones():
    expected = {
        "SEAttention": "se_bias_free_r16",
        "SEBlock": "se_paper_r16",
        "CBAMBlock": "cbamblock_r16_k49",
        "ECAAttention": "eca_k3_bias",
        "eca_layer": "eca_k3",
        "CoordinateAttention": "coordatt_r32",
        "ELA": "ela_b",
    }
    for spelling in SPELLINGS:
        if spelling.name in expected:
            assert params(spelling_layer(spelling, 256)) == FORMS[expected[spelling.name]]["params"]


@pytest.mark.parametrize(("typed", "first"), [("CoordAttn", "CoordAtt"), ("cbam", "CBAM"), ("SEAttn", "SEAttention")])
def test_an_unknown_name_hints_layer_names_only_on_one_short_line(typed, first):
    with pytest.raises(ModelConfigError) as error:
        build(typed, [1024])
    message = str(error.value)
    head, fix = message.split(" Fix: ")
    hints = head.split("Did you mean ")[1].rstrip("?").split(", ")
    assert hints[0] == first and len(hints) <= 5 and len(head) <= 200 and "\n" not in message
    assert not {"BaseModel", "DetectionModel", "Ensemble"} & set(hints)
