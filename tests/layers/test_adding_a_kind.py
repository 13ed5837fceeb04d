"""Adding an attention kind takes the three places CONTRIBUTING.md names, and everything else follows.

A toy kind is written into a copy of the package, exactly as CONTRIBUTING.md describes it (a layer file, its
reference equations, one row in the table of kinds) and nothing else; a fresh interpreter then checks that the YAML
rows, the command-line choices, ``kind_names()``, the documentation-table generator and the parametrised layer tests
all pick it up.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

TOY_LAYER = '''\
"""A toy channel gate for tests/layers/test_adding_a_kind.py (no paper: it only proves the plumbing)."""

from __future__ import annotations

import torch
from torch import nn

from .validation import positive_int


class ToyGate(nn.Module):
    """``y = x * sigmoid(w * mean_hw(x))``, one weight per channel.

    Args:
        c1 (int): Input channels C. The output has the same number of channels.
    """

    FUSED_KERNELS: frozenset[str] = frozenset()

    def __init__(self, c1: int) -> None:
        super().__init__()
        self.channels = positive_int("ToyGate", "c1 (input channels)", c1)
        self.weight = nn.Parameter(torch.ones(c1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate the channels of ``x`` (N, C, H, W)."""
        return x * (self.weight.view(1, -1, 1, 1) * x.mean((2, 3), keepdim=True)).sigmoid()
'''

TOY_REFERENCE = '''

def toy_gate(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The toy gate's equation."""
    return x * torch.sigmoid(layer.weight[None, :, None, None] * x.mean((2, 3), keepdim=True))
'''

CHECK = textwrap.dedent(
    """
    import json, subprocess, sys
    import attnyolo
    from ultralytics import YOLO
    from attnyolo.layers.registry import kind_names, kinds_markdown
    from attnyolo.layers.toy_gate import ToyGate
    from attnyolo.layers.registry import kinds_arg

    assert attnyolo.__file__.startswith(sys.argv[1]), attnyolo.__file__
    built = YOLO("yolov8n-Toy.yaml").model  # a generated variant name: the YAML rows of every placement
    placed = {"nc": 2, "attention": "Toy", "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Attention", []]],
              "head": [[[1], 1, "Detect", ["nc"]]]}
    from ultralytics.nn.tasks import DetectionModel
    explicit = DetectionModel(placed, verbose=False)  # an `attention:` key choosing the kind for Attention rows
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/layers"],
        capture_output=True, text=True,
    ).stdout
    print(json.dumps({
        "kinds": kind_names(),
        "yaml_rows": sum(isinstance(m, ToyGate) for m in built.modules()),
        "attention_key": sum(isinstance(m, ToyGate) for m in explicit.modules()),
        "cli": kinds_arg("Toy,SE"),
        "docs_row": [line for line in kinds_markdown().splitlines() if line.startswith("| Toy |")],
        "layer_tests": sorted({line.split("::")[1] for line in tests.splitlines() if "Toy" in line}),
    }))
    """
)


def add_kind_as_contributing_says(package: Path) -> None:
    """The three places of CONTRIBUTING.md "Adding an attention kind", written into the package copy ``package``."""
    layers = package / "layers"
    (layers / "toy_gate.py").write_text(TOY_LAYER)  # 1. the layer
    reference = layers / "reference.py"
    text = reference.read_text()
    cut = text.index("\n\ndef randomize_(")  # beside the other kinds' equations
    reference.write_text(text[:cut] + TOY_REFERENCE + text[cut:])  # 2. its equations
    registry = layers / "registry.py"
    text = registry.read_text()
    text = text.replace(
        "from .squeeze_excite import SEAttention\n",
        "from .squeeze_excite import SEAttention\nfrom .toy_gate import ToyGate\n",
        1,
    )
    row = '    AttentionKind("Toy", ToyGate, (), reference.toy_gate, "a test"),\n'
    text = text.replace("KINDS: tuple[AttentionKind, ...] = (\n", "KINDS: tuple[AttentionKind, ...] = (\n" + row, 1)
    assert "ToyGate" in text and row in text, "registry.py no longer has the shape CONTRIBUTING.md describes"
    registry.write_text(text)  # 3. one row in the table of kinds


@pytest.mark.slow
def test_a_kind_added_as_contributing_says_is_picked_up_everywhere(tmp_path):
    contributing = (REPO / "CONTRIBUTING.md").read_text()
    assert "Three places in the package" in contributing  # the instructions this test follows
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "models", root / "attnyolo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "cfg", root / "cfg")  # a checkout's layout: cfg/ beside the package
    shutil.copytree(REPO / "tests", root / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    add_kind_as_contributing_says(root / "attnyolo")
    env = {**os.environ, "PYTHONPATH": str(root), "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(root)], cwd=root, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["kinds"][0] == "Toy" and "ELA-S" in found["kinds"]
    assert found["yaml_rows"] >= 1 and found["attention_key"] == 1
    assert found["cli"] == ["Toy", "SE"]
    assert len(found["docs_row"]) == 1 and "`[-1, 1, ToyGate, [256]]`" in found["docs_row"][0]
    # The parametrised layer tests run the new kind: shapes, precision, determinism, the reference equations, and
    # the demand for an independent algebra oracle of its own (CONTRIBUTING.md, "Then the tests").
    assert any(name.startswith("test_reference_equals_independent_algebra[") for name in found["layer_tests"])
    assert len(found["layer_tests"]) >= 5, found["layer_tests"]
