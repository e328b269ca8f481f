"""Stand-in of ``comfy_api.latest``: the V3 node interface's names that the custom-node package uses.

Signatures follow ComfyUI's ``comfy_api/latest/_io.py``; a wrong keyword fails here as it would there.
"""

from __future__ import annotations

import types
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


class _Input:
    def __init__(
        self,
        id: str,
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        extra_dict: dict | None = None,
    ) -> None:
        self.id, self.display_name, self.optional, self.tooltip, self.lazy = id, display_name, optional, tooltip, lazy


class _Output:
    def __init__(
        self,
        id: str | None = None,
        display_name: str | None = None,
        tooltip: str | None = None,
        is_output_list: bool = False,
    ) -> None:
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


class _IntInput(_Input):
    def __init__(
        self,
        id: str,
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        default: int | None = None,
        min: int | None = None,
        max: int | None = None,
        step: int | None = None,
        control_after_generate: bool | None = None,
        display_mode: Any = None,
        socketless: bool | None = None,
        force_input: bool | None = None,
    ) -> None:
        super().__init__(id, display_name, optional, tooltip, lazy)
        self.default, self.min, self.max, self.step = default, min, max, step


class _ComboInput(_Input):
    def __init__(
        self,
        id: str,
        options: list[str] | list[int] | None = None,
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        default: str | int | None = None,
        control_after_generate: bool | None = None,
        upload: Any = None,
        image_folder: Any = None,
        remote: Any = None,
        socketless: bool | None = None,
    ) -> None:
        super().__init__(id, display_name, optional, tooltip, lazy)
        self.options, self.default = options, default


def _comfy_type(io_type: str, input_base: type = _Input) -> type:
    """A type of socket, with its ``Input`` and ``Output`` classes (ComfyUI's ``@comfytype``)."""
    inputs = type("Input", (input_base,), {"io_type": io_type})
    outputs = type("Output", (_Output,), {"io_type": io_type})
    return type(io_type, (), {"io_type": io_type, "Input": inputs, "Output": outputs})


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list | None = None
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False


class ComfyNode(ABC):
    @classmethod
    @abstractmethod
    def define_schema(cls) -> Schema: ...

    @classmethod
    @abstractmethod
    def execute(cls, **kwargs: Any) -> NodeOutput: ...


class NodeOutput:
    def __init__(self, *args: Any, ui: Any = None, expand: dict | None = None, block_execution: str | None = None):
        self.args, self.ui, self.expand, self.block_execution = args, ui, expand, block_execution

    @property
    def result(self) -> tuple | None:
        return self.args if len(self.args) > 0 else None


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        return None

    @abstractmethod
    async def get_node_list(self) -> list[type[ComfyNode]]: ...


io = types.SimpleNamespace(
    ComfyNode=ComfyNode,
    Schema=Schema,
    NodeOutput=NodeOutput,
    Image=_comfy_type("IMAGE"),
    Int=_comfy_type("INT", _IntInput),
    Combo=_comfy_type("COMBO", _ComboInput),
    UpscaleModel=_comfy_type("UPSCALE_MODEL"),
)
