"""Training-side code (data readers, samplers, metrics); kept apart from the ComfyUI node pack."""
