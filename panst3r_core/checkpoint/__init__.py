"""Checkpoint I/O: official PanSt3R/MUSt3R files (allow-list unpickling, no eval) and our safetensors format."""
