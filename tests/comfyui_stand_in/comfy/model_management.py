"""Stand-in of ``comfy.model_management``: the device ComfyUI runs models on (here the CPU, as ``--cpu``)."""

import torch


def get_torch_device() -> torch.device:
    return torch.device("cpu")
