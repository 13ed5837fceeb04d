"""The attention layers, one file per layer, and the table of kinds (:mod:`attnyolo.layers.registry`).

Every layer takes its input channel count first, keeps the output shape equal to the input shape, and follows its
paper's defaults; departures are marked ``# NOTE: not in paper`` in the code. ``fast/`` holds the optional inference
fast path (fewer passes over the feature map, and fused C++ kernels on CPU).
"""

from .cbam import CBAMAttention
from .coord_attention import CoordAtt
from .eca import ECAAttention
from .efficient_local_attention import ELA
from .registry import KINDS, AttentionKind, build_layer, get_kind, kind_names, layer_classes, reference_forward
from .squeeze_excite import SEAttention

__all__ = (
    "KINDS",
    "AttentionKind",
    "CBAMAttention",
    "CoordAtt",
    "ECAAttention",
    "ELA",
    "SEAttention",
    "build_layer",
    "get_kind",
    "kind_names",
    "layer_classes",
    "reference_forward",
)
