"""AttnYOLO: Coordinate Attention, ELA, SE, CBAM and ECA layers for Ultralytics YOLO detectors.

Importing the package registers the layers with Ultralytics' model parser (:mod:`attnyolo.integration`), so
``YOLO("yolov5s_Coordinate_attention.yaml")`` builds. The layout shows the architecture:

* ``layers/`` — one file per attention layer, ``registry.py`` (the table of kinds), ``reference.py`` (the papers'
  equations), ``fast/`` (the optional inference fast path and fused CPU kernels);
* ``integration/`` — the seam into Ultralytics, and the list of every internal it touches;
* ``yolox/`` — YOLOX's head, loss, SimOTA, training recipe and official checkpoints;
* ``yolov5/`` — classic (anchor-based) YOLOv5: head, loss, AutoAnchor, recipe, YOLOv5 checkpoints;
* ``engine/`` — training, resume, transfer, foreign checkpoint formats, prediction, export;
* ``evaluation/`` — COCO (pycocotools) and PASCAL VOC scoring; ``data/`` — converters and the sample dataset;
* ``analysis/`` — benchmarks, ablation, visualisation; ``commands/`` — the ``attnyolo`` command and tools/;
* ``utils/`` — the ``key=value`` command line, crash-safe writes, where files live; ``errors.py`` — the exceptions.

Imports run down the floors: layers -> integration (the seam) -> families (yolov5/, yolox/) -> engine, evaluation ->
analysis -> commands (docs/design.md). The seam never imports a family: each family registers its heads, YAML keys,
checkpoint format and self-checks with :mod:`attnyolo.integration.plugins` when it is imported, here, before
:func:`register` patches Ultralytics.

Class import paths are part of the checkpoint format (Ultralytics pickles whole models): the module paths of earlier
releases stay importable through :data:`LEGACY_MODULES`.
"""

import os
import sys

# Before Ultralytics is first imported (it reads this once): never pip-install packages at run time. A checkpoint
# that names a module which is not importable would otherwise make Ultralytics pip-install a PyPI package of that
# name. Users may opt back in with YOLO_AUTOINSTALL=true.
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

from . import layers  # noqa: E402, F401  (after the environment setting above; attnyolo.layers)
from . import yolox as _yolox  # noqa: E402, F401  (registers YOLOX with the seam; its format is tried first)

# isort: split
from . import yolov5 as _yolov5  # noqa: E402, F401  (registers classic YOLOv5 with the seam)
from .errors import CheckpointError, ModelConfigError, UnsupportedUltralyticsError  # noqa: E402
from .integration import is_registered, register  # noqa: E402
from .integration.checkpoints.legacy import LEGACY_MODULES  # noqa: E402
from .layers import (  # noqa: E402
    ELA,
    KINDS,
    CBAMAttention,
    CoordAtt,
    ECAAttention,
    SEAttention,
    build_layer,
    kind_names,
    layer_classes,
)
from .utils.cli import debugging, plain  # noqa: E402
from .utils.paths import package_version  # noqa: E402
from .utils.paths import package_version as _version  # noqa: E402, F401  (the name earlier releases had)

__version__ = package_version()

for _name, _module in LEGACY_MODULES.items():
    sys.modules.setdefault(_name, _module)

__all__ = (
    "KINDS",
    "CBAMAttention",
    "CheckpointError",
    "CoordAtt",
    "ECAAttention",
    "ELA",
    "ModelConfigError",
    "SEAttention",
    "UnsupportedUltralyticsError",
    "build_layer",
    "is_registered",
    "kind_names",
    "layer_classes",
    "register",
)


def _refusal_as_one_line(previous_hook):
    """A ``sys.excepthook`` that prints an uncaught :class:`UnsupportedUltralyticsError` as one line.

    The refusal happens while ``attnyolo`` is imported, before any tool's error handling exists (``tools/*.py``, the
    ``attnyolo`` console script and ``python -m attnyolo`` all import the package first). Code that imports attnyolo
    inside ``try`` still gets the exception; ``ATTNYOLO_DEBUG=1`` keeps the traceback.
    """

    def hook(kind, error, traceback):
        if issubclass(kind, UnsupportedUltralyticsError) and not debugging():
            print(f"error: {plain(str(error))}", file=sys.stderr)
        else:
            previous_hook(kind, error, traceback)

    hook._attnyolo = True
    return hook


try:
    register()
except UnsupportedUltralyticsError:
    if not getattr(sys.excepthook, "_attnyolo", False):  # a second failed import must not wrap it again
        sys.excepthook = _refusal_as_one_line(sys.excepthook)
    raise
