"""AttnYOLO: Coordinate Attention, ELA, SE, CBAM and ECA layers for Ultralytics YOLO detectors.

Importing the package registers the layers with Ultralytics' model parser (see :mod:`attnyolo.registration`), so
``YOLO("yolov5s_Coordinate_attention.yaml")`` builds. Class import paths below are part of the checkpoint format:
Ultralytics pickles whole models, so ``attnyolo.coord_attention.CoordAtt`` etc. must stay importable by those names.
"""

from .cbam import CBAMAttention
from .coord_attention import CoordAtt
from .eca import ECAAttention
from .efficient_local_attention import ELA
from .registration import CFG_DIR, LAYERS, ModelConfigError, UnsupportedUltralyticsError, is_registered, register
from .squeeze_excite import SEAttention

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
