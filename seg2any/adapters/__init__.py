"""The method bound to a model implementation: ComfyUI's Flux and diffusers' FluxTransformer2DModel.

``comfyui.py`` patches a ComfyUI MODEL through ModelPatcher hooks only; ``comfyui_models.py``,
``comfyui_text.py``, ``comfyui_demo.py`` (the demo model and its trained-size rule) and
``comfyui_conditioning.py`` (CONDITIONING for the stock samplers) serve the nodes. ``diffusers.py``
is the same forward on diffusers (training, CLI) and ``diffusers_pipeline.py`` the CLI's sampler.
Only the ``comfyui*.py`` modules import ComfyUI.

May import: errors, flux, layout, attention, sampling, conditioning
"""
