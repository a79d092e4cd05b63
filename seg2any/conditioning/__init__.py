"""A layout made model input: the contour map, condition tokens, caption budgets, batched rows.

``contour.py`` the entity contour map and the generation size; ``condition_tokens.py`` its VAE
latent packed into tokens, empty ones dropped; ``t5_tokens.py`` the per-caption T5 budget and
``token_request.py`` the editor's token counts; ``settings.py`` the per-prompt Seg2Any settings a
text conditioning carries (layout, spans, mode, isolation, alpha); ``batching.py`` several
prompts' settings turned into one model call's plan, rules and padded inputs.

May import: errors, flux, layout, attention, sampling
"""
