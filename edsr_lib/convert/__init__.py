"""Third-party EDSR/MDSR checkpoints: read them into the library's models, and write the library's models out.

The package has one module per layout (:mod:`~edsr_lib.convert.edsr_pytorch`,
:mod:`~edsr_lib.convert.torchsr`, :mod:`~edsr_lib.convert.super_image`,
:mod:`~edsr_lib.convert.basicsr`, their shared :class:`Layout` in
:mod:`~edsr_lib.convert.base` and their table in :mod:`~edsr_lib.convert.layouts`), the
library's own layout (:mod:`~edsr_lib.convert.library`, from what the model classes
declare), the official files (:mod:`~edsr_lib.convert.official`), what detection found
(:mod:`~edsr_lib.convert.spec`), and reading
(:mod:`~edsr_lib.convert.reading`), detection (:mod:`~edsr_lib.convert.detection`) and
writing (:mod:`~edsr_lib.convert.writing`), and the conversion on load of the third-party
files that pretrained tags name (:mod:`~edsr_lib.convert.pretrained`). Import the names
below from ``edsr_lib.convert``.

Each third-party layout is one :class:`Layout` object, which owns everything about it:
how its key names are recognised, where it keeps each convolution, its defaults, and
its pixel convention (range and mean). The same object reads and writes. Four are known:

- ``"edsr-pytorch"``: the reference code and its official checkpoints (``head.0``,
  ``body.N.body.{0,2}``, ``tail.0.<i>``, ``tail.1``, fixed ``sub_mean``/``add_mean``
  convolutions; MDSR adds ``pre_process.S`` and ``upsample.S``). Images in
  ``[0, rgb_range]``.
- ``"torchsr"``: torchSR's ``EDSR``, which keeps EDSR-PyTorch's key names and mean shifts
  and always works at ``rgb_range`` 255 on [0, 1] inputs. It has no MDSR.
- ``"basicsr"``: BasicSR's ``EDSR`` (``conv_first``, ``body.N.conv1/conv2``,
  ``conv_after_body``, ``upsample.<i>``, ``conv_last``), usually wrapped in
  ``params``/``params_ema``. Its ``img_range`` and ``rgb_mean`` are options, not tensors.
- ``"super-image"``: the ``super-image`` package's ``EdsrModel`` (e.g.
  ``eugenesiow/edsr-base``). Same key names as EDSR-PyTorch, but its ``forward`` never
  applies ``sub_mean``/``add_mean`` and works on [0, 1] images, so the converted model gets
  ``rgb_range=1`` and a zero mean.

Reading never guesses in silence. :func:`detect` reads only key names and tensor shapes
(and the values of the fixed mean shifts), infers the hyperparameters, and refuses a
state dict that it cannot map completely. Where the key names fit several layouts that
read them differently (EDSR-PyTorch's names are also super-image's), it raises
:class:`AmbiguousLayoutError`, naming them, unless ``layout=`` says which. :func:`convert`
also uses what lies beside a file: an official EDSR-PyTorch file is recognised by its
sha256, and a super-image checkpoint by the ``config.json`` that the package writes.

:func:`convert_state_dict` is the one function that maps a foreign state dict in memory
onto the library's model (integrations such as spandrel use it); :func:`convert` does
the same for a file. :func:`export_state_dict` and :func:`export_checkpoint` write a
library model in the EDSR-PyTorch, torchSR or BasicSR layout.

The fixed mean shifts are not parameters of the library's models (their mean and range
come from the config): the converter checks them and carries their values into
``rgb_mean``/``rgb_range``. ``res_scale`` is stored nowhere: it is assumed (0.1 for EDSR
with 256 features and 32 blocks, as in the paper, else 1.0) and can be overridden.

Example:
    >>> from edsr_lib.convert import convert
    >>> model = convert("edsr_baseline_x2-1bc95232.pt", "converted/")  # doctest: +SKIP
    >>> model.conversion.notes  # doctest: +SKIP
    ('recognised official checkpoint edsr_baseline_x2-1bc95232.pt (by sha256)', ...)
"""

from __future__ import annotations

# the converter of third-party pretrained files (a tag with a layout) is part of this package: importing it hands
# the builder that converter, so that every path that loads a registered name through the converter can load those
# weights (convert --to of edsr_x2, whose weights are super-image's file), not only paths through registry or hub
from . import pretrained  # noqa: F401
from .base import Layout
from .detection import AmbiguousLayoutError, convert_state_dict, detect
from .layouts import LAYOUTS, WRITABLE_LAYOUTS, get_layout
from .official import OFFICIAL_CHECKPOINTS, OfficialCheckpoint, identify_file
from .reading import convert, load_state_dict
from .spec import ConvertedSpec
from .super_image import SUPER_IMAGE_MDSR
from .writing import ExportedCheckpoint, export_checkpoint, export_state_dict

__all__ = [
    "LAYOUTS",
    "OFFICIAL_CHECKPOINTS",
    "SUPER_IMAGE_MDSR",
    "WRITABLE_LAYOUTS",
    "AmbiguousLayoutError",
    "ConvertedSpec",
    "ExportedCheckpoint",
    "Layout",
    "OfficialCheckpoint",
    "convert",
    "convert_state_dict",
    "detect",
    "export_checkpoint",
    "export_state_dict",
    "get_layout",
    "identify_file",
    "load_state_dict",
]
