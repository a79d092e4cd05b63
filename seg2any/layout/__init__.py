"""Layouts: a global caption plus entities (caption + pixel mask), and everything that makes one.

``layout.py`` the Layout type and the official PNG + JSON pair; ``editor_document.py`` the layout
editor's saved document; ``examples.py`` the shipped example layouts; ``preview.py`` the picture
of a layout; ``token_grid.py`` pixel masks on FLUX's image-token grid (nearest-exact, area).

May import: errors, flux
"""
