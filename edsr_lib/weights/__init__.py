"""Pretrained weights shipped inside the package, one folder per ``arch.tag``.

Each folder (for example ``edsr_baseline_x2.t291/``) holds ``model.safetensors``,
``config.json`` and a ``README.md`` model card, as :func:`edsr_lib.hub.save_pretrained`
writes them. A pretrained config points at its file with ``package_file``
(``"edsr_baseline_x2.t291/model.safetensors"``); :func:`edsr_lib.hub.load_pretrained`
looks here before the Hugging Face cache and the Hub.
"""
