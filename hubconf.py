"""``torch.hub`` entry points: one per registered model, made from edsr-lib's registry.

::

    model = torch.hub.load("<owner>/edsr-lib", "edsr_baseline_x2", pretrained=True)
    model = torch.hub.load("path/to/edsr-lib", "mdsr", source="local", pretrained=True)

Each entry takes ``pretrained``, ``tag`` (which weights: ``tag="t291"`` loads
``edsr_baseline_x2.t291``) and the other arguments of :func:`edsr_lib.create_model` (``weights``,
constructor overrides); ``torch.hub.list`` lists them and ``torch.hub.help`` prints what the
default weights are. The entries are not written out by hand: a model added to the registry
gets one here.
"""

from collections.abc import Callable as _Callable

import edsr_lib as _edsr_lib

#: What ``torch.hub`` checks is importable before it loads an entry (the package's own dependencies).
dependencies = ["torch", "timm", "safetensors", "huggingface_hub", "numpy", "PIL"]


def _entry(name: str) -> _Callable[..., object]:
    def load(pretrained: bool = False, tag: str | None = None, **kwargs: object) -> object:
        return _edsr_lib.create_model(f"{name}.{tag}" if tag else name, pretrained=pretrained, **kwargs)

    try:
        cfg = _edsr_lib.get_pretrained_cfg(name)
        weights = f"pretrained=True loads {cfg.architecture}.{cfg.tag}: {cfg.description or cfg.hf_hub_id}."
    except ValueError:  # a model without weights
        weights = "No pretrained weights: pretrained=True is refused; pass weights=PATH to load a file."
    tags = [t.rpartition(".")[2] for t in _edsr_lib.list_models(name, pretrained=True)]
    others = f" tag= picks other weights: {', '.join(tags)}." if len(tags) > 1 else ""
    load.__name__ = load.__qualname__ = name
    load.__doc__ = (
        f"{name}: edsr_lib.create_model('{name}[.tag]', pretrained=pretrained, **kwargs). {weights}{others}\n\n"
        "Other keyword arguments are those of edsr_lib.create_model (weights=, cache_dir=, constructor overrides)."
    )
    return load


for _name in _edsr_lib.list_models():
    globals()[_name] = _entry(_name)
del _name
