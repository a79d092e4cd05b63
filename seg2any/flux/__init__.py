"""FLUX's facts: the architecture spec, the diffusers <-> ComfyUI weight names, Seg2Any LoRA files.

``spec.py`` states the architecture once (sizes, pixel/latent/token geometry, block and Linear
names, the condition-token modules, the isolation range); ``keys.py`` maps full weights between
diffusers and BFL/ComfyUI names; ``lora_format.py`` reads, validates and writes the two-adapter
checkpoints. A new fact about the model goes in ``spec.py`` and is read from there.

May import: errors
"""
