"""The table of third-party layouts: :data:`LAYOUTS`, :data:`WRITABLE_LAYOUTS` and :func:`get_layout`.

A new layout is a module beside this one (a :class:`~edsr_lib.convert.Layout` subclass)
and one entry here.
"""

from __future__ import annotations

from .base import Layout
from .basicsr import BasicSRLayout
from .edsr_pytorch import EDSRPyTorchLayout
from .super_image import SuperImageLayout
from .torchsr import TorchSRLayout

__all__ = ["LAYOUTS", "WRITABLE_LAYOUTS", "get_layout"]

REGISTRY: dict[str, Layout] = {
    layout.name: layout for layout in (EDSRPyTorchLayout(), BasicSRLayout(), SuperImageLayout(), TorchSRLayout())
}

#: The third-party layouts :func:`detect` knows (EDSR-PyTorch's key names first, as before).
LAYOUTS: tuple[str, ...] = tuple(REGISTRY)

#: The layouts :func:`export_state_dict` writes.
WRITABLE_LAYOUTS: tuple[str, ...] = tuple(name for name, layout in REGISTRY.items() if layout.writable)


def get_layout(name: str) -> Layout:
    """The :class:`Layout` object of a layout name (one of :data:`LAYOUTS`).

    Raises:
        ValueError: For an unknown name.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown layout {name!r}; known layouts: {', '.join(LAYOUTS)}")
    return REGISTRY[name]
