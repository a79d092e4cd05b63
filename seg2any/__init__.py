"""Seg2Any (segmentation mask to image on FLUX) as a library, free of ComfyUI.

The folders read bottom-up; each may import only the ones listed in its ``__init__`` docstring
("May import:"), which ``tests/core/test_import_rules.py`` checks:

* ``errors.py``     the error types every layer raises (imports nothing of the package);
* ``flux/``         the model's facts: the architecture spec, weight-name maps, LoRA checkpoints;
* ``layout/``       layouts (captions + masks) and where they come from, their pixels-to-token grid;
* ``attention/``    the masking rules and the exact kernels that evaluate them, one backend table;
* ``sampling/``     what drives a generation around the model: schedule, noise, trained size;
* ``conditioning/`` a layout made model input: contour map, condition tokens, T5 budget, batching;
* ``adapters/``     all of that bound to a model implementation (ComfyUI's Flux, diffusers');
* ``__main__.py``   the command line.

Only ``adapters/comfyui*.py`` import ComfyUI; nothing here imports ``nodes/``, ``training/`` or ``tests/``.
See docs/ARCHITECTURE.md for the data flow.
"""
