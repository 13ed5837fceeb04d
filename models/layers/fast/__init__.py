"""The layers' optional inference fast path: fewer passes over the feature map, and fused CPU kernels.

Nothing here changes a result: every fast form is held to the reference equations (:mod:`attnyolo.layers.reference`)
by the tests. ``paths.py`` holds the eager fast path shared by the layers; ``kernels.py`` builds and loads the fused
C++ kernels in ``csrc/`` on first use, and falls back to the eager path where no compiler is available.
"""
