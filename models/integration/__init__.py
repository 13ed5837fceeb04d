"""The seam into Ultralytics, split by concern; :mod:`.internals` lists every internal touched and why.

* :mod:`.parser` — how our rows get built (channel inference, attention kinds, the YOLOX head, depthwise);
* :mod:`.names` — model names and cfg/ lookup;
* :mod:`.checkpoints` — opening, checking and atomically writing checkpoints;
* :mod:`.model_methods` — fuse, init_criterion and get_flops extended to our layers and heads;
* :mod:`.version` — the tested Ultralytics range and the behavioural self-check outside it.
"""

from .internals import is_registered, register

__all__ = ("is_registered", "register")
