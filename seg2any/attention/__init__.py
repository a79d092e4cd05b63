"""Seg2Any's masked joint attention: the rules, and exact kernels that evaluate them.

``rules.py`` the rules in compact form (per-token tags, one ``visible`` / ``score_bias``) and the
isolation range; ``backends.py`` the one table of backends (what each supports, how it runs);
``kernels.py`` the front that picks a row and runs it; ``split.py``, ``flex.py`` the block-skipping
kernels; ``tuning.py`` the measured choice behind "auto". A new backend is a row in ``backends.py``.

May import: errors, flux, layout
"""
