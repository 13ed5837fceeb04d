"""Deterministic, storage-free weights for YOLOX state dicts (numpy only).

``seeded_state_dict`` fills every entry of a state dict from nothing but the entry's key, its shape and a seed, so a
test can rebuild exactly the weights that produced a stored fixture without shipping a checkpoint. Each key gets its
own generator, ``numpy.random.RandomState(zlib.crc32(key.encode()) ^ seed)``; the legacy ``RandomState`` stream is
frozen by numpy's compatibility policy, so the values do not change across numpy versions or platforms, and they do
not depend on the order of the keys or on which other keys are present.

Distributions (float entries are drawn in float64 with the key's own generator, then cast to float32); the first
matching rule wins:

=============================================  ============================================================
key                                            values
=============================================  ============================================================
``*num_batches_tracked``                       int64 zeros (no random draw)
``*running_var``                               uniform(0.5, 1.5)
``*running_mean``                              normal(0, 0.1)
``head.cls_preds.*.bias``,                     normal(-1.0, 0.5)
``head.obj_preds.*.bias``
other ``*bias`` (prediction conv, BN beta)     normal(0, 0.05)
other 1-D ``*weight`` (BN gamma)               uniform(0.8, 1.2)
``head.reg_preds.*.weight``                    normal(0, 0.15 / sqrt(fan_in))
``head.cls_preds.*.weight``,                   normal(0, 0.4 / sqrt(fan_in))
``head.obj_preds.*.weight``
``*stem.conv.conv.weight`` (Focus stem)        normal(0, 0.2 / sqrt(fan_in))
``*.m.<i>.conv2.conv.weight``,                 normal(0, 0.2 / sqrt(fan_in))
``*.m.<i>.conv2.pconv.conv.weight``
other weights with ndim >= 2 (conv)            normal(0, 1.3 / sqrt(fan_in))
anything else                                  normal(0, 0.05)
=============================================  ============================================================

``fan_in`` is the product of all dimensions but the first (in_channels / groups * kh * kw for a conv weight). Keys
are the official YOLOX ones (``backbone.backbone.stem.conv.conv.weight``, ``head.reg_preds.0.weight``, ...): to load
the same weights into a re-implementation, generate them under the official keys and rename them with the key map.

Why these gains: in eval mode BatchNorm uses the (random) running statistics and does not renormalise, so the
activation scale is set by the weights alone. The input is BGR in 0..255 (rms about 150); the small stem gain puts the
stem output at a standard deviation of about 16, where SiLU acts almost like ReLU and so is close to scale-free.
A plain conv gain of 1.3 then keeps the scale roughly constant from layer to layer (1.3**2 / 2 times the mean of
gamma**2 / running_var, about 1.11, is about 0.94), and the damped last conv of each CSP bottleneck branch (0.2) stops
the residual sums from growing through the 3 to 12 bottlenecks of a stage. The small prediction gains map the head
features (standard deviation 1.5 to 10) to raw regression outputs with std about 0.25 (nano) to 1 (s), so
exp(t_wh) * stride is a box of a few strides, and to objectness/class logits centred near -1 with std about 0.9
(nano) to 2.3 (s), so the probabilities are spread over (0, 1) and not saturated. Measured on the official models
(eval, 320x320 letterboxed image): max |t_wh| is 1.3 (nano), 1.8 (tiny), 2.6 (s), 4.5 (m), 3.3 (l); YOLOX-X's deeper
stages still drift (|t_wh| up to about 8), so use nano to l where sane outputs matter. In train mode BatchNorm
normalises with batch statistics and the outputs stay near the biases (t_wh near 0, scores near sigmoid(-1)**2).
"""

from __future__ import annotations

import re
import zlib

import numpy as np

__all__ = ["seeded_array", "seeded_state_dict"]

# last conv of a Bottleneck branch inside a CSPLayer: ``...m.<i>.conv2.conv.weight`` or, depthwise, ``...pconv...``
_BRANCH_END = re.compile(r"\.m\.\d+\.conv2\.(pconv\.)?conv\.weight$")

CONV_GAIN = 1.3
STEM_GAIN = 0.2
BRANCH_GAIN = 0.2
REG_PRED_GAIN = 0.15
SCORE_PRED_GAIN = 0.4
SCORE_BIAS_MEAN = -1.0
SCORE_BIAS_STD = 0.5


def _fan_in(shape: tuple[int, ...]) -> int:
    """Return the product of all dimensions but the first (at least 1)."""
    return max(int(np.prod(shape[1:])), 1)


def seeded_array(key: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Return the deterministic value of one state-dict entry.

    Args:
        key: full state-dict key, e.g. ``"backbone.backbone.stem.conv.bn.running_var"``.
        shape: tensor shape (``()`` for scalars such as ``num_batches_tracked``).
        seed: non-negative integer below 2**32, mixed into the per-key generator seed.

    Returns:
        A float32 array of ``shape`` (int64 zeros for ``num_batches_tracked``).
    """
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    shape = tuple(int(s) for s in shape)
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    rng = np.random.RandomState(zlib.crc32(key.encode()) ^ seed)
    is_score_pred = key.startswith(("head.cls_preds.", "head.obj_preds."))
    if key.endswith("running_var"):
        values = rng.uniform(0.5, 1.5, size=shape)
    elif key.endswith("running_mean"):
        values = rng.normal(0.0, 0.1, size=shape)
    elif key.endswith("bias"):
        if is_score_pred:
            values = rng.normal(SCORE_BIAS_MEAN, SCORE_BIAS_STD, size=shape)
        else:
            values = rng.normal(0.0, 0.05, size=shape)
    elif key.endswith("weight") and len(shape) == 1:
        values = rng.uniform(0.8, 1.2, size=shape)
    elif len(shape) >= 2:
        if key.startswith("head.reg_preds."):
            gain = REG_PRED_GAIN
        elif is_score_pred:
            gain = SCORE_PRED_GAIN
        elif key.endswith("stem.conv.conv.weight"):
            gain = STEM_GAIN
        elif _BRANCH_END.search(key):
            gain = BRANCH_GAIN
        else:
            gain = CONV_GAIN
        values = rng.normal(0.0, gain / np.sqrt(_fan_in(shape)), size=shape)
    else:
        values = rng.normal(0.0, 0.05, size=shape)
    return np.asarray(values, dtype=np.float32)


def seeded_state_dict(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Fill a whole state dict deterministically.

    Args:
        shapes: mapping of state-dict key to shape, e.g. ``{k: tuple(v.shape) for k, v in model.state_dict().items()}``.
        seed: non-negative integer below 2**32; the same (key, shape, seed) always gives the same array.

    Returns:
        Mapping of the same keys, in the same order, to numpy arrays (float32; int64 for ``num_batches_tracked``).
        Convert with ``{k: torch.from_numpy(v) for k, v in result.items()}`` before ``load_state_dict``.
    """
    return {key: seeded_array(key, shape, seed) for key, shape in shapes.items()}
