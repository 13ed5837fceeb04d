"""Checkpoints saved by attnyolo 0.1 (flat module layout) still load, in a fresh process, with the same outputs.

The fixtures were written by attnyolo 0.1.0 (commit d065b32) with ``YOLO(yaml).save(...)``; their pickles name the
old class paths (``attnyolo.coord_attention.CoordAtt``, ...). See tests/fixtures/README.md.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"

LOAD = """
import json, sys
import numpy as np, torch
from ultralytics import YOLO
ckpt, expected = sys.argv[1], np.load(sys.argv[2])["output"]
model = YOLO(ckpt).model.float().eval()
x = torch.from_numpy(np.random.RandomState(0).uniform(0, 1, (1, 3, 64, 96)).astype(np.float32))
with torch.no_grad():
    out = model(x)[0].numpy()
classes = sorted({type(m).__module__ + "." + type(m).__name__ for m in model.modules()})
print(json.dumps({"max_diff": float(np.abs(out - expected).max()), "classes": classes, "names": model.names}))
"""


@pytest.mark.parametrize(
    ("name", "expected_classes"),
    [
        (
            "legacy_attention_v0",
            {
                "attnyolo.layers.coord_attention.CoordAtt",
                "attnyolo.layers.efficient_local_attention.ELA",
                "attnyolo.layers.squeeze_excite.SEAttention",
                "attnyolo.layers.cbam.CBAMAttention",
                "attnyolo.layers.eca.ECAAttention",
            },
        ),
        (
            "legacy_yolox_v0",
            {
                "attnyolo.layers.coord_attention.CoordAtt",
                "attnyolo.yolox.head.YOLOXDetect",
                "attnyolo.yolox.blocks.DWSepConv",
            },
        ),
    ],
)
def test_old_module_paths_load_in_a_fresh_process(name, expected_classes, tmp_path):
    with zipfile.ZipFile(FIXTURES / f"{name}.pt") as archive:
        pickle_bytes = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert b"attnyolo.coord_attention" in pickle_bytes  # the file really names the old path
    # `import attnyolo` first, as the README says; unpickling then resolves the old paths through the aliases.
    code = "import attnyolo\n" + LOAD
    out = subprocess.run(
        [sys.executable, "-c", code, str(FIXTURES / f"{name}.pt"), str(FIXTURES / f"{name}_expected.npz")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["max_diff"] < 1e-3
    assert expected_classes <= set(result["classes"])
    assert result["names"] == {"0": "circle", "1": "rectangle", "2": "triangle"}
