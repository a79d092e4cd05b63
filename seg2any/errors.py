"""Error types with messages meant for the person who wired the graph.

Every check in the pack raises one of these with a sentence that names the culprit (the
entity, the colour, the size), so ComfyUI shows something actionable instead of a stack trace.
"""


class Seg2AnyError(ValueError):
    """Base class; a ValueError so generic callers still catch it."""


class LayoutError(Seg2AnyError):
    """The layout (masks, colours, prompts, JSON) is inconsistent or malformed."""


class TokenBudgetError(Seg2AnyError):
    """A prompt is longer than the T5 token budget the adapters were trained with."""


class LoraFormatError(Seg2AnyError):
    """A LoRA checkpoint does not match the Seg2Any layout or the model it is applied to."""


class ModelMismatchError(Seg2AnyError):
    """The model, latent or conditioning does not fit what the layout was built for."""
