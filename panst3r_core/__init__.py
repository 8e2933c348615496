"""PanSt3R model, inference, post-processing, losses, metrics and training engine (torch only)."""
