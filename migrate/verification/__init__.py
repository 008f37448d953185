"""Stage 5, verify: restore a converted output and compare it with the legacy graph."""
