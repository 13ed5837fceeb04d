"""The seam into Ultralytics, split by concern; :mod:`.internals` lists every internal touched and why.

* :mod:`.plugins` — the registration points: the families register their heads, YAML keys, checkpoint formats and
  self-checks there (the seam never imports a family);
* :mod:`.parser` — how our rows get built (channel inference, attention kinds, the registered heads and keys);
* :mod:`.names` — model names and cfg/ lookup;
* :mod:`.checkpoints` — opening, checking and atomically writing checkpoints (:mod:`.formats`: the registered
  formats of other projects);
* :mod:`.model_methods` — fuse, init_criterion and get_flops extended to our layers and heads;
* :mod:`.version` — the tested Ultralytics range and the behavioural self-check outside it.
"""

from .internals import is_registered, register

__all__ = ("is_registered", "register")
