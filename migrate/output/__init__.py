"""Stage 4, write: assign tensors, write the TF2 checkpoint atomically, its manifest and report."""
