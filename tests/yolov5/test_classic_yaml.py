"""Classic YOLOv5 YAMLs build unchanged: official layouts with the official sizes, the forks' rows and names."""

import copy
import functools
import logging
import re
from pathlib import Path

import pytest
import torch
import yaml
from ultralytics.nn.tasks import DetectionModel
from yolov5_helpers import FIXTURES, darknet53_yolov3, fixture_json, tiny_p7

import attnyolo
from attnyolo.errors import ModelConfigError
from attnyolo.yolov5.blocks import YOLOv5Bottleneck, YOLOv5BottleneckCSP
from attnyolo.yolov5.head import YOLOv5Detect

REPO = Path(__file__).resolve().parents[2]
COUNTS = fixture_json("official_counts.json")
CHECKPOINTS = fixture_json("checkpoints.json")
LAYOUTS = fixture_json("classic_layouts.json")  # parameter counts the real v7.0 code gives (tests/fixtures/README.md)
# YOLOv5 v7.0's depth/width multiples of yolov5n/s/m/l/x.yaml (github ultralytics/yolov5, models/)
MULTIPLES = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}


def official_yaml(scale: str) -> dict:
    """YOLOv5 v7.0's models/yolov5<scale>.yaml as that file writes it: depth/width multiples, no `scales`."""
    d = yaml.safe_load((REPO / "cfg/yolov5/yolov5-classic.yaml").read_text())
    del d["scales"]
    d["depth_multiple"], d["width_multiple"] = MULTIPLES[scale]
    d["head"][-1][3] = ["nc", "anchors"]
    return d


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def fork_yaml(rows_edit=None, **top) -> dict:
    d = yaml.safe_load((FIXTURES / "ca_fork_tiny.yaml").read_text())
    if rows_edit:
        rows_edit(d)
    return {**d, **top}


@pytest.mark.parametrize("scale", ["n", "s"])
def test_official_yaml_content_builds_with_the_official_parameter_count(scale):
    model = DetectionModel(official_yaml(scale), verbose=False)
    assert isinstance(model.model[-1], YOLOv5Detect)
    assert params(model) == COUNTS["official"][f"yolov5{scale}"]["parameters"]
    assert model.save == [4, 6, 10, 14, 17, 20, 23]
    assert model.stride.tolist() == [8.0, 16.0, 32.0]


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["m", "l", "x"])
def test_official_yaml_content_builds_with_the_official_parameter_count_and_gflops(scale):
    from ultralytics.utils.torch_utils import get_flops

    model = DetectionModel(official_yaml(scale), verbose=False)
    official = COUNTS["official"][f"yolov5{scale}"]
    assert params(model) == official["parameters"]
    gflops = get_flops(model, 640)
    assert gflops == pytest.approx(official["gflops_640_unrounded"]["ultralytics-thop 2.2.3"], rel=0.01)


@pytest.mark.parametrize("scale", list("nsmlx"))
def test_shipped_names_build_the_official_models(scale):
    d = yaml.safe_load((REPO / "cfg/yolov5/yolov5-classic.yaml").read_text())
    assert d["scales"][scale][:2] == list(MULTIPLES[scale])
    assert d["anchors"] == [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
    if scale in "ns":  # the larger ones are counted by the slow test from the same rows
        assert (
            params(DetectionModel(f"yolov5{scale}-classic.yaml", verbose=False))
            == COUNTS["official"][f"yolov5{scale}"]["parameters"]
        )


def test_the_seed_name_and_classic_names_are_anchor_based_and_yolov5u_names_are_not():
    seed = DetectionModel("yolov5s_Coordinate_attention.yaml", verbose=False)
    named = DetectionModel("yolov5s-classic-CoordAtt.yaml", verbose=False)
    assert isinstance(seed.model[-1], YOLOv5Detect) and isinstance(named.model[-1], YOLOv5Detect)
    assert params(seed) == params(named)
    # CoordAtt yolov5s built by the real code (CA after the P3/P4/P5 backbone C3 stages, nc=80)
    assert params(seed) == COUNTS["other"]["yolov5s_ca"]["parameters"]
    yolov5u = DetectionModel("yolov5n-CoordAtt.yaml", verbose=False)
    assert not isinstance(yolov5u.model[-1], YOLOv5Detect)


@functools.cache
def classic_n_params() -> int:
    return params(DetectionModel("yolov5n-classic.yaml", verbose=False))


@pytest.mark.parametrize("kind", attnyolo.kind_names())
def test_every_kind_has_a_classic_name(kind):
    model = DetectionModel(f"yolov5n-classic-{kind}.yaml", verbose=False)
    layers = [m for m in model.model if isinstance(m, tuple(attnyolo.layer_classes().values()))]
    assert [m.i for m in layers] == [5, 8, 11] and isinstance(model.model[-1], YOLOv5Detect)
    assert params(model) == classic_n_params() + sum(params(m) for m in layers)


def test_the_ca_fork_yaml_builds_unchanged_as_the_fork_built_it():
    model = DetectionModel(str(FIXTURES / "ca_fork_tiny.yaml"), verbose=False)
    fork = CHECKPOINTS["tiny_ca_fork.pt"]["model"]
    assert params(model) == fork["n_params"] == 33328
    assert [m.i for m in model.model if isinstance(m, attnyolo.CoordAtt)] == [5, 8, 11]
    assert model.model[-1].f == [20, 23, 26] and model.save == fork["save"]


def test_repeated_coordatt_rows_stack_like_the_fork():
    model = DetectionModel(str(FIXTURES / "ca_fork_tiny_rep.yaml"), verbose=False)
    assert isinstance(model.model[5], attnyolo.CoordAtt)  # n=2 at depth 0.33 -> round(0.66) = 1
    assert isinstance(model.model[11], torch.nn.Sequential) and len(model.model[11]) == 2  # n=6 -> 2
    # every CoordAtt tensor of the fork's checkpoint of this YAML, with its shape (model.11.0.*, model.11.1.*)
    theirs = CHECKPOINTS["(not shipped) tiny_ca_fork_rep stripped"]["coordatt_state_dict"]
    ours = {k: list(v.shape) for k, v in model.state_dict().items() if k.split(".")[1] in {"5", "8", "11"}}
    assert ours == theirs


@pytest.mark.parametrize("alias", ["CA", "CoordAttention"])
def test_coordatt_aliases(alias):
    def edit(d):
        d["backbone"][5][2] = alias

    model = DetectionModel(fork_yaml(edit), verbose=False)
    assert isinstance(model.model[5], attnyolo.CoordAtt)


@pytest.mark.parametrize(
    ("args", "variant"), [([256], "B"), ([256, 7], "B"), ([256, "S"], "S"), ([None, "L"], "L"), ([256, 5], "T")]
)
def test_the_ela_authors_class_name_with_a_kernel_size_or_a_variant(args, variant, caplog):
    def edit(d):
        d["backbone"][5] = [-1, 1, "EfficientLocalizationAttention", args]

    with caplog.at_level(logging.WARNING, logger="attnyolo"):
        model = DetectionModel(fork_yaml(edit, width_multiple=0.25), verbose=False)
    assert isinstance(model.model[5], attnyolo.ELA) and model.model[5].variant == variant
    assert ("uses 16 groups" in caplog.text) is (args == [256, 5])


def test_an_ela_kernel_size_without_a_variant_is_refused():
    def edit(d):
        d["backbone"][5] = [-1, 1, "EfficientLocalizationAttention", [256, 9]]

    with pytest.raises(ModelConfigError, match=r"row 5 \(EfficientLocalizationAttention\): kernel_size 9"):
        DetectionModel(fork_yaml(edit), verbose=False)


@pytest.mark.parametrize(
    ("args", "reduction", "warns"),
    [([1024], 32, False), ([1024, 1024], 32, True), ([1024, 1024, 16], 16, True), ([1024, 16], 16, False)],
)
def test_coordatt_inp_oup_rows_are_read_as_the_forks_mean_them(args, reduction, warns, caplog):
    # 1024 channels, so that C // reduction, not the floor of 8, sets the hidden width
    d = {
        "nc": 2,
        "anchors": [[10, 13], [30, 61], [116, 90]],
        "backbone": [
            [-1, 1, "Conv", [16, 3, 2]],
            [-1, 1, "Conv", [16, 3, 2]],
            [-1, 1, "Conv", [16, 3, 2]],
            [-1, 1, "Conv", [1024, 3, 2]],
            [-1, 1, "CoordAtt", args],
            [-1, 1, "Conv", [16, 3, 2]],
        ],
        "head": [[[2, 4, 5], 1, "Detect", ["nc", "anchors"]]],
    }
    with caplog.at_level(logging.WARNING, logger="attnyolo"):
        model = DetectionModel(d, verbose=False)
    assert model.model[4].mip == 1024 // reduction  # not reduction=1024 (mip 8) for [1024, 1024]
    assert ("is read as [inp, oup" in caplog.text) is warns


@pytest.mark.parametrize("args", [[256, 512], [256, 512, 16]])
def test_a_coordatt_row_whose_output_differs_from_its_input_names_file_row_and_numbers(args):
    def edit(d):
        d["backbone"][5][3] = args

    with pytest.raises(ModelConfigError) as error:
        DetectionModel(fork_yaml(edit), verbose=False)
    message = str(error.value)
    assert "row 5 (CoordAtt)" in message and "[inp=256, oup=512]" in message
    assert re.search(r"oup must equal inp \(256 != 512\)", message)


def test_a_classic_yaml_file_error_names_the_file(tmp_path):
    d = fork_yaml()
    d["backbone"][5][3] = [256, 512]
    path = tmp_path / "yolov5s_ca_fork.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ModelConfigError, match=r"yolov5s_ca_fork\.yaml, row 5 \(CoordAtt\)"):
        DetectionModel(str(path), verbose=False)


def test_anchor_count_builds_placeholders_for_autoanchor():
    model = DetectionModel(fork_yaml(anchors=3), verbose=False)
    head = model.model[-1]
    assert head.anchors.shape == (3, 3, 2)
    assert (head.anchors[0] * 8).flatten().tolist() == [0, 1, 2, 3, 4, 5]  # YOLOv5's placeholders, grid units


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.pop("anchors"), "names the top-level `anchors:` key, which the file does not have"),
        (lambda d: d.__setitem__("anchors", [[10, 13, 16, 30]] * 2), "2 anchor levels but the head reads 3 rows"),
        (lambda d: d.__setitem__("anchors", [[10, 13, 16]] * 3), "one list of w,h pixel pairs per level"),
        (lambda d: d["head"][-1].__setitem__(3, ["nc", "anchors", 1]), r"should be \[nc, anchors\]"),
    ],
)
def test_bad_anchors_fail_naming_row_and_fix(edit, match):
    d = copy.deepcopy(fork_yaml())
    edit(d)
    with pytest.raises(ModelConfigError, match=match):
        DetectionModel(d, verbose=False)


def test_check_model_source_accepts_classic_names():
    from attnyolo.integration.names import check_model_source, model_names

    for name in ("yolov5s-classic.yaml", "yolov5x-classic-ELA-L.yaml", "yolov5s_Coordinate_attention.yaml"):
        check_model_source(name)
    assert {"yolov5n-classic.yaml", "yolov5m-classic-CBAM.yaml"} <= set(model_names())
    with pytest.raises(FileNotFoundError, match="Did you mean yolov5n-classic-CoordAtt.yaml"):
        check_model_source("yolov5n-clasic-CoordAtt.yaml")


def test_the_zoo_lists_the_classic_family():
    from attnyolo.analysis.summary import zoo_names

    assert "yolov5n-classic-CoordAtt.yaml" in zoo_names()
    names = zoo_names(("yolov5-classic",), "n", yolox=False)
    assert names == ["yolov5n-classic.yaml"] + [f"yolov5n-classic-{k}.yaml" for k in attnyolo.kind_names()]


# ------------------------------------------------------------------- YOLOv5's Bottleneck and BottleneckCSP blocks
def csp_yaml(scale: str) -> dict:
    """YOLOv5 v7.0's yolov5<scale>.yaml with every C3 row renamed BottleneckCSP (the layout of releases before v4.0)."""
    d = official_yaml(scale)
    for row in d["backbone"] + d["head"]:
        row[2] = "BottleneckCSP" if row[2] == "C3" else row[2]
    return d


def kernels(block) -> list[tuple]:
    return [(b.cv1.conv.kernel_size, b.cv2.conv.kernel_size) for b in block.m]


def test_bottleneck_csp_rows_build_yolov5s_blocks_with_the_official_parameter_count():
    model = DetectionModel(csp_yaml("s"), verbose=False)
    assert params(model) == LAYOUTS["parameters"]["yolov5s_bottleneckcsp"] == 7_426_941  # Ultralytics' 9,237,373
    csp = model.model[2]
    assert type(csp) is YOLOv5BottleneckCSP and kernels(csp) == [((1, 1), (3, 3))]  # n=3 at depth 0.33 -> 1
    assert [type(m).__name__ for m in model.model].count("YOLOv5BottleneckCSP") == 8


def test_the_yolov3_layout_builds_yolov5_bottlenecks_with_the_official_parameter_count():
    model = DetectionModel(darknet53_yolov3(), verbose=False)  # 62M parameters: built once
    assert params(model) == LAYOUTS["parameters"]["yolov3"] == 61_949_149  # Ultralytics' Bottleneck: 97,092,829
    stage = model.model[6]  # 8 residual blocks at P3
    assert isinstance(stage, torch.nn.Sequential) and len(stage) == 8
    assert all(type(b) is YOLOv5Bottleneck and b.add for b in stage)
    assert type(model.model[11]) is YOLOv5Bottleneck and not model.model[11].add  # [1024, False]: no shortcut


def test_yolov5_blocks_take_yolov5s_arguments():
    # YOLOv5's Bottleneck(c1, c2, shortcut, g, e): e is the fifth argument, where Ultralytics' takes a kernel size
    block = YOLOv5Bottleneck(64, 64, True, 1, 0.25)
    assert block.cv1.conv.out_channels == 16 and block.cv1.conv.kernel_size == (1, 1)
    assert block.cv2.conv.kernel_size == (3, 3) and block.add
    csp = YOLOv5BottleneckCSP(64, 128, 2, False, 1, 0.25)
    assert csp.cv1.conv.out_channels == 32 and len(csp.m) == 2 and not csp.m[0].add
    # YOLOv5's state-dict keys, in YOLOv5's order (cv1..cv4, bn, then the blocks)
    assert list(dict.fromkeys(k.split(".")[0] for k in csp.state_dict())) == ["cv1", "cv2", "cv3", "cv4", "bn", "m"]


def test_anchor_free_models_keep_ultralytics_blocks_and_the_parser_gets_its_names_back():
    import ultralytics.nn.tasks as tasks
    from ultralytics.nn.modules import Bottleneck, BottleneckCSP

    d = csp_yaml("n")
    d["head"][-1][3] = ["nc"]  # Ultralytics' anchor-free Detect
    model = DetectionModel(d, verbose=False)
    assert type(model.model[2]) is BottleneckCSP and kernels(model.model[2]) == [((3, 3), (3, 3))]
    bad = csp_yaml("n")
    bad["backbone"][2][3] = [128, True, 1, 0.5, 7, 8]  # too many arguments: a classic build failing in the parser
    with pytest.raises(TypeError):
        DetectionModel(bad, verbose=False)
    assert tasks.Bottleneck is Bottleneck and tasks.BottleneckCSP is BottleneckCSP


def test_a_pyramid_deeper_than_stride_32_builds():
    # YOLOv5's yolov5-p7.yaml failed ("Sizes of tensors must match"): at the 64-pixel probe, P6 and P7 are 1x1 maps
    model = DetectionModel(tiny_p7(), verbose=False)
    assert params(model) == LAYOUTS["parameters"]["tiny_p7"]
    assert model.stride.tolist() == LAYOUTS["strides"]["tiny_p7"]
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, 256, 256))[0]
    assert tuple(out.shape) == (1, 4 + 3, 3 * (8 * 8 + 4 * 4 + 2 * 2))


def test_a_yaml_file_named_like_an_ultralytics_p6_model_is_read_as_given(tmp_path, monkeypatch):
    from ultralytics import YOLO

    path = tmp_path / "yolov5s6.yaml"  # Ultralytics renames this stem to its anchor-free yolov5s-p6.yaml
    path.write_text((FIXTURES / "ca_fork_tiny.yaml").read_text())
    fork = CHECKPOINTS["tiny_ca_fork.pt"]["model"]["n_params"]
    model = DetectionModel(str(path), verbose=False)
    assert isinstance(model.model[-1], YOLOv5Detect) and params(model) == fork and model.yaml["yaml_file"] == str(path)
    monkeypatch.chdir(tmp_path)
    for built in (DetectionModel("yolov5s6.yaml", verbose=False), YOLO("yolov5s6.yaml").model):
        assert isinstance(built.model[-1], YOLOv5Detect) and params(built) == fork


# ----------------------------------------------------------------------------------- ELA rows under both names
@pytest.mark.parametrize("name", ["ELA", "EfficientLocalizationAttention"])
@pytest.mark.parametrize(("extra", "variant"), [([7], "B"), ([5], "T"), (["S"], "S"), (["l"], "L"), ([], None)])
def test_both_ela_names_read_a_variant_or_the_authors_kernel_size(name, extra, variant, caplog):
    def edit(d):
        d["backbone"][5] = [-1, 1, name, [256, *extra]]

    with caplog.at_level(logging.WARNING, logger="attnyolo"):
        model = DetectionModel(fork_yaml(edit, width_multiple=0.25), verbose=False)
    default = "B"  # both public classes default to kernel 7, depthwise, GroupNorm(16): ELA-B
    assert isinstance(model.model[5], attnyolo.ELA) and model.model[5].variant == (variant or default)
    assert model.model[5].kernel_size == {"T": 5, "B": 7, "S": 5, "L": 7}[variant or default]
    assert ("uses 16 groups" in caplog.text) is (extra == [5])


@pytest.mark.parametrize("name", ["ELA", "EfficientLocalizationAttention"])
@pytest.mark.parametrize(
    ("args", "match"),
    [
        ([1024, 9], "kernel_size 9 has no ELA variant"),
        ([1024, "X"], "unknown ELA variant 'X'"),
        ([1024, True], "kernel_size True has no ELA variant"),
        ([1024, 5, 16], r"1 value\(s\) after the variant"),
    ],
)
def test_a_bad_ela_argument_names_the_file_and_the_row(tmp_path, name, args, match):
    d = fork_yaml()
    d["backbone"][11] = [-1, 1, name, args]
    path = tmp_path / "my_ela.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ModelConfigError, match=match) as error:
        DetectionModel(str(path), verbose=False)
    message = str(error.value)
    assert message.startswith(f"{path}, row 11 ({name}): ") and "Fix:" in message and "\n" not in message


def test_any_layer_refusing_its_arguments_names_the_file_and_the_row(tmp_path):
    d = fork_yaml()
    d["backbone"][8] = [-1, 1, "SEAttention", [512, 0]]  # reduction 0: refused by the layer's own check
    path = tmp_path / "my_se.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ModelConfigError) as error:
        DetectionModel(str(path), verbose=False)
    message = str(error.value)
    assert message.startswith(f"{path}, row 8 (SEAttention): SEAttention: ") and "0" in message and "Fix:" in message
