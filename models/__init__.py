"""AttnYOLO: Coordinate Attention, ELA, SE, CBAM and ECA layers for Ultralytics YOLO detectors.

Importing the package registers the layers with Ultralytics' model parser (see :mod:`attnyolo.registration`), so
``YOLO("yolov5s_Coordinate_attention.yaml")`` builds. Class import paths below are part of the checkpoint format:
Ultralytics pickles whole models, so ``attnyolo.coord_attention.CoordAtt`` etc. must stay importable by those names.
"""

import os

# Before Ultralytics is first imported (it reads this once): never pip-install packages at run time. A checkpoint
# that names a module which is not importable would otherwise make Ultralytics pip-install a PyPI package of that
# name. Users may opt back in with YOLO_AUTOINSTALL=true.
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

from .cbam import CBAMAttention  # noqa: E402  (after the environment setting above)
from .coord_attention import CoordAtt  # noqa: E402
from .eca import ECAAttention  # noqa: E402
from .efficient_local_attention import ELA  # noqa: E402
from .registration import (  # noqa: E402
    CFG_DIR,
    LAYERS,
    ModelConfigError,
    UnsupportedUltralyticsError,
    is_registered,
    register,
)
from .squeeze_excite import SEAttention  # noqa: E402

__version__ = "0.1.0"
__all__ = (
    "CFG_DIR",
    "CBAMAttention",
    "CoordAtt",
    "ECAAttention",
    "ELA",
    "LAYERS",
    "ModelConfigError",
    "SEAttention",
    "UnsupportedUltralyticsError",
    "is_registered",
    "register",
)

register()
