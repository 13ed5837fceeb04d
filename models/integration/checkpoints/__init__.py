"""One home for checkpoints: a file is sniffed, screened and handed to the reader of its format.

* :mod:`.formats` sniffs: a file in a format a family registered (:func:`attnyolo.integration.plugins.register_format`:
  official YOLOX, classic YOLOv5 and its forks) goes to that format's reader, one interface for all
  (:class:`~attnyolo.integration.plugins.ForeignFormat`: ``detect(path)``, ``load(path, model, nc)``);
* :mod:`.screen` screens every other file before anything is unpickled: the globals its pickles reference
  (:mod:`.pickles`, read without running them) against the allowlist (:mod:`.allowlist`, :mod:`.legacy`);
* :mod:`.reading` reads it with torch's weights-only unpickler (and is what Ultralytics' loader calls), or in full
  for a file the user vouches for;
* :mod:`.refusals` holds the words of every refusal; :mod:`.writing` writes checkpoints atomically.

The names below are this package's interface (``attnyolo.integration.checkpoints.read_checkpoint``, ...).
"""

from ...utils.cli import (  # noqa: F401
    TRUST_ENV,
    checkpoints_trusted,
    trust_checkpoints,
)
from .allowlist import (  # noqa: F401
    _checkpoint_getattr,
    _fixed_globals,
    allowed_call,
    allowed_global,
    data_globals,
    numpy_scalar_globals,
)
from .formats import (  # noqa: F401
    detect_format,
)
from .pickles import (  # noqa: F401
    _LEGACY_PICKLES,
    MAX_PICKLE_BYTES,
    AmbiguousArchive,
    OversizedPickle,
    archive_pickle,
    legacy_pickles,
    legacy_storage_excess,
    pickle_globals,
    scan_pickles,
    torch_default_globals,
    torch_save_format,
    zip_pickle_record,
)
from .reading import (  # noqa: F401
    _foreign,
    check_checkpoint_file,
    load_model,
    load_trusted,
    read_checkpoint,
    wrap_torch_safe_load,
)
from .refusals import (  # noqa: F401
    TRUST_HINT,
    _damaged,
    _label,
    _oversized,
    _weights_only_reason,
    checkpoint_label,
    checkpoint_label_of,
    old_torch_refusal,
    refusal,
    weights_only_refusal,
)
from .screen import (  # noqa: F401
    _lock,
    _registered,
    _scoped,
    _torch_registered_names,
    _with_model,
    allow_globals,
    load_weights_only,
    referenced_globals,
    scoped_globals,
    screen_checkpoint,
)
from .writing import (  # noqa: F401
    save_model_atomically,
    wrap_strip_optimizer,
)
