"""Model YAMLs are data: `activation:` is parsed, never evaluated, and rows can only name layer classes."""

import pytest
import yaml
from torch import nn
from ultralytics import YOLO
from ultralytics.nn import tasks

import attnyolo
from attnyolo.commands import run
from attnyolo.integration.parser import parse_activation


def write_cfg(path, activation=None, rows=None):
    cfg = {"nc": 2, "backbone": rows or [[-1, 1, "Conv", [16, 3, 2]]], "head": [[[0], 1, "Detect", ["nc"]]]}
    if activation is not None:
        cfg["activation"] = activation
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "activation",
    [
        "__import__('os').system('touch {marker}') or nn.SiLU()",
        "nn.LeakyReLU(__import__('os').system('touch {marker}'))",
        "exec(\"open('{marker}', 'w')\")",
        "nn.SiLU() if __import__('os').system('touch {marker}') else nn.SiLU()",
        "torch.nn.modules.activation.__builtins__['exec']('open(\"{marker}\", \"w\")')",
    ],
)
def test_malicious_activation_runs_nothing_through_yolo(activation, tmp_path):
    marker = tmp_path / "ran"
    cfg = write_cfg(tmp_path / "evil.yaml", activation.format(marker=marker))
    with pytest.raises(attnyolo.ModelConfigError) as error:
        YOLO(cfg)
    assert not marker.exists()
    message = str(error.value)
    assert message.startswith(f"{cfg}: `activation: ") and "was refused" in message and "\n" not in message


def test_model_info_on_a_malicious_yaml_is_one_line_exit_1(tmp_path, capsys):
    marker = tmp_path / "ran"
    cfg = write_cfg(tmp_path / "evil.yaml", f"__import__('os').system('touch {marker}') or nn.SiLU()")
    with pytest.raises(SystemExit) as done:
        run("model_info", [f"model={cfg}"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and not marker.exists()
    assert err.count("\n") == 1 and err.startswith(f"error: {cfg}: `activation: __import__") and "Traceback" not in err


@pytest.mark.parametrize(
    ("activation", "expected"),
    [
        ("nn.ReLU()", nn.ReLU()),
        ("torch.nn.LeakyReLU(0.1)", nn.LeakyReLU(0.1)),
        ("nn.LeakyReLU(negative_slope=0.2, inplace=True)", nn.LeakyReLU(0.2, inplace=True)),
        ("nn.Hardswish()", nn.Hardswish()),
        ("nn.Identity()", nn.Identity()),
    ],
)
def test_documented_activations_build_as_ultralytics_builds_them(activation, expected, tmp_path):
    assert repr(parse_activation(activation)) == repr(expected)
    model = YOLO(write_cfg(tmp_path / "act.yaml", activation)).model
    assert repr(model.model[0].act) == repr(expected)  # what Ultralytics' parser made of the accepted text
    assert type(tasks.Conv.default_act) is nn.SiLU  # and the process-wide default is restored afterwards


@pytest.mark.parametrize("rows", ["stock", "attention"])
def test_an_accepted_activation_reaches_no_eval(rows, tmp_path, monkeypatch):
    # parse_model evaluates `activation:` with the builtin eval, looked up in ultralytics.nn.tasks' globals; a module
    # global of that name shadows it. AttnYOLO hands the parser the dict without the key and sets the activation.
    def no_eval(*args):
        raise AssertionError(f"eval{args} was called")

    monkeypatch.setattr(tasks, "eval", no_eval, raising=False)
    extra = [] if rows == "stock" else [[-1, 1, "CoordAtt", []], [-1, 1, "Conv", [16, 3, 2]], [-1, 1, "SPPF", [16, 5]]]
    cfg = write_cfg(tmp_path / "act.yaml", "nn.LeakyReLU(0.1)", rows=[[-1, 1, "Conv", [16, 3, 2]], *extra])
    model = YOLO(cfg).model
    convs = [m for m in model.modules() if isinstance(m, tasks.Conv)]
    assert convs and all(repr(m.act) == repr(nn.LeakyReLU(0.1)) for m in convs)  # SPPF's convs too
    assert model.yaml["activation"] == "nn.LeakyReLU(0.1)"  # kept in the model's YAML, so checkpoints rebuild alike
    assert type(tasks.Conv.default_act) is nn.SiLU


def test_the_default_activation_is_restored_when_a_build_fails(tmp_path):
    bad_row = [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [16, 3, 2, None, 1, 1, True, 5]]]
    with pytest.raises(TypeError):  # one argument more than Conv takes: fails inside Ultralytics' build
        YOLO(write_cfg(tmp_path / "bad.yaml", "nn.ReLU()", rows=bad_row))
    assert type(tasks.Conv.default_act) is nn.SiLU


@pytest.mark.parametrize(
    ("activation", "reason"),
    [
        ("nn.ReLU", "not a call"),
        ("nn.Conv2d(1, 1, 1)", "nn.Conv2d is not a torch.nn activation"),
        ("os.system('x')", "os.system is not a torch.nn activation"),
        ("nn.LeakyReLU(x)", "not literal"),
        ("nn.LeakyReLU(**kw)", "unpacks"),
        ("nn.LeakyReLU(1, 2, 3)", "LeakyReLU rejects these arguments"),
        (3, "it is a int"),
    ],
)
def test_refusals_say_why(activation, reason, tmp_path):
    with pytest.raises(attnyolo.ModelConfigError, match=reason):
        YOLO(write_cfg(tmp_path / "bad.yaml", activation))


def test_a_row_cannot_call_a_function_from_the_parsers_namespace(tmp_path, monkeypatch):
    # parse_model resolves a row's module name in ultralytics.nn.tasks' globals and calls it with the row's args;
    # that namespace holds functions too (torch_safe_load, check_requirements, ...). Only layer classes are allowed.
    calls = []
    monkeypatch.setattr(tasks, "attnyolo_test_function", lambda *a: calls.append(a) or nn.Identity(), raising=False)
    rows = [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "attnyolo_test_function", ["payload"]]]
    with pytest.raises(attnyolo.ModelConfigError, match=r"row 1: unknown layer 'attnyolo_test_function'"):
        YOLO(write_cfg(tmp_path / "fn.yaml", rows=rows))
    assert calls == []
    for name in ("torch_safe_load", "check_requirements", "yaml_model_load"):
        rows = [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, name, ["x"]]]
        with pytest.raises(attnyolo.ModelConfigError, match=rf"unknown layer '{name}'"):
            YOLO(write_cfg(tmp_path / f"{name}.yaml", rows=rows))


def test_errors_name_the_file_the_user_typed(tmp_path, monkeypatch, capsys):
    # Ultralytics retries 'yolov5m_CA.yaml' as 'yolov5_CA.yaml' and reported only that name.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        run("model_info", ["model=yolov5m_CA.yaml"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and "model: yolov5m_CA.yaml is neither a file nor a model name" in err
    assert "yolov5_CA.yaml" not in err


ATTENTION_ROWS = [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Attention", [16]], [-1, 1, "C2f", [16, True]]]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"nc": "x"}, "nc: 'x' is not a number of classes. Fix: write a whole number, e.g. nc: 80."),
        ({"depth_multiple": "x"}, "depth_multiple: 'x' is not a positive number. Fix: e.g. depth_multiple: 0.5."),
        ({"scales": {"n": [0.33, "x", 1024]}}, "scales: n: [0.33, 'x', 1024] is not [depth, width, max_channels]"),
        ({"row": (2, 0, "x")}, "row 2 (C2f): from='x' is not a row index. Fix: write -1 (the previous row)"),
        ({"row": (2, 1, "x")}, "row 2 (C2f): number='x' is not a repeat count. Fix: write a whole number, e.g. 3."),
        ({"row": (2, 1, True)}, "row 2 (C2f): number=True is not a repeat count."),
        ({"arg": (0, 2, "x or 2")}, "row 0 (Conv): argument 3, 'x or 2', is text, not a value nor the name of a "),
    ],
    ids=["nc", "depth_multiple", "scales", "from", "number", "number-bool", "conv-arg"],
)
def test_a_value_of_the_wrong_type_is_named_with_its_file_and_row(change, expected, tmp_path):
    # Ultralytics fails on these deep in its build ("can only concatenate str", "'>' not supported", "list indices
    # must be integers") or in its first forward pass (conv2d's 400-character signature dump).
    rows = [list(row) for row in ATTENTION_ROWS]
    cfg = {"nc": 2, "attention": "SE", "backbone": rows, "head": [[[2], 1, "Detect", ["nc"]]]}
    if "row" in change:
        row, field, value = change["row"]
        rows[row][field] = value
    elif "arg" in change:
        row, k, value = change["arg"]
        rows[row][3] = [*rows[row][3][:k], value]
    else:
        cfg.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    with pytest.raises(attnyolo.ModelConfigError) as error:
        YOLO(path)
    message = str(error.value)
    separator = ", " if expected.startswith("row ") else ": "  # a row's message: "<file>, row 2 (C2f): ..."
    assert message.startswith(f"{path}{separator}{expected}") and "\n" not in message, message
