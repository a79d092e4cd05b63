"""What drives a generation around the model: sigma schedule, initial noise, trained resolution.

``schedule.py`` the official FlowMatch schedule with FLUX.1-dev's shift; ``noise.py`` ComfyUI's and
the official initial noise; ``trained_size.py`` rendering a layout at a small model's trained size
(the demo) and scaling the image back.

May import: errors, flux, layout
"""
