"""The Seg2Any node classes, grouped by concern; ``comfy_entrypoint`` lists them for ComfyUI."""

from comfy_api.latest import ComfyExtension, io

from .condition_nodes import ConditioningNode, ContourEncoder
from .demo_nodes import DemoModelLoader
from .editor_nodes import LayoutEditor, register_routes
from .layout_nodes import EntityNode, LayoutFromFiles, LayoutFromMasks, LayoutPreview, RegionalPromptBuilder
from .lora_nodes import LoadSeg2AnyLora, register_folders
from .sampler_nodes import MaskedFluxSampler, ScaleToLayout

NODES: list[type[io.ComfyNode]] = [
    LoadSeg2AnyLora,
    RegionalPromptBuilder,
    LayoutEditor,
    EntityNode,
    LayoutFromFiles,
    LayoutFromMasks,
    LayoutPreview,
    ContourEncoder,
    ConditioningNode,
    MaskedFluxSampler,
    ScaleToLayout,
    DemoModelLoader,
]


class Seg2AnyExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> ComfyExtension:
    register_folders()
    register_routes()
    return Seg2AnyExtension()
