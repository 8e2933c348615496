"""The PanSt3R architecture (parameter names identical to the official checkpoints)."""
