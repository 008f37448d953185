"""Stage 1, read: legacy TF1 checkpoints, their variables' roles, and the index guard."""
