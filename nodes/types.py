"""Custom socket types passed between Seg2Any nodes (plain Python objects, treated as immutable)."""

from comfy_api.latest import io

Layout = io.Custom("SEG2ANY_LAYOUT")  # seg2any.conditioning.settings.EncodedLayout
Entities = io.Custom("SEG2ANY_ENTITIES")  # nodes.layout_nodes.EntityList
Condition = io.Custom("SEG2ANY_CONDITION")  # seg2any.conditioning.condition_tokens.ConditionTokens

CATEGORY = "Seg2Any"
