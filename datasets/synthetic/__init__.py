"""Procedural indoor scenes written in the exact ScanNet++ v2 layout (`generate_dataset`, `panst3r synth`)."""
