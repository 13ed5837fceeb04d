"""Module paths of attnyolo 0.1 (flat layout), kept importable: checkpoints pickle the class paths they were saved with.

``import attnyolo`` registers each old path as an alias of the module that holds those classes now, and the
checkpoint allowlist (:mod:`attnyolo.integration.checkpoints.allowlist`) resolves the old paths to the same classes.
"""

from __future__ import annotations

from ...layers import cbam, coord_attention, eca, efficient_local_attention, squeeze_excite

# Module paths of attnyolo 0.1 -> where those classes live now.
LEGACY_MODULES = {
    "attnyolo.coord_attention": coord_attention,
    "attnyolo.efficient_local_attention": efficient_local_attention,
    "attnyolo.squeeze_excite": squeeze_excite,
    "attnyolo.cbam": cbam,
    "attnyolo.eca": eca,
}
