"""Training data over preprocessed scene stores: view tuples, crops, colour jitter, the torch Dataset."""
