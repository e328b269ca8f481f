"""Stand-in of ``comfy.model_management``: the device ComfyUI runs models on, and the user's cancel.

Behaviour as in ComfyUI's own module (read from its source, 0.3.64):

* :func:`get_torch_device` reports the CPU when ComfyUI runs with ``--cpu``
  (:func:`set_cpu`, here also when torch has no CUDA, where ComfyUI itself would fail at
  start), MPS on a Mac, and otherwise the *current* CUDA device, ``cuda:N``.
* The cancel button (``POST /interrupt``) calls :func:`interrupt_current_processing` from
  the server's thread; a node stops at its next :func:`throw_exception_if_processing_interrupted`,
  which clears the flag and raises :class:`InterruptProcessingException` (ComfyUI's progress
  hook calls it on every progress update too, see ``comfy.utils``).
"""

from __future__ import annotations

import enum
import threading

import torch


class CPUState(enum.Enum):
    GPU = 0
    CPU = 1
    MPS = 2


cpu_state = CPUState.MPS if torch.backends.mps.is_available() else CPUState.GPU


def set_cpu(on: bool = True) -> None:
    """What ComfyUI's ``--cpu`` flag does at start: every model runs on the CPU."""
    global cpu_state
    cpu_state = CPUState.CPU if on else (CPUState.MPS if torch.backends.mps.is_available() else CPUState.GPU)


def get_torch_device() -> torch.device:
    if cpu_state == CPUState.MPS:
        return torch.device("mps")
    if cpu_state == CPUState.CPU or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device(torch.cuda.current_device())  # an index: cuda:N


class InterruptProcessingException(Exception):
    pass


_interrupt_lock = threading.RLock()
_interrupted = False


def interrupt_current_processing(value: bool = True) -> None:
    global _interrupted
    with _interrupt_lock:
        _interrupted = value


def processing_interrupted() -> bool:
    with _interrupt_lock:
        return _interrupted


def throw_exception_if_processing_interrupted() -> None:
    global _interrupted
    with _interrupt_lock:
        if _interrupted:
            _interrupted = False
            raise InterruptProcessingException()
