"""Whole directories of checkpoints: scan, run in worker processes or Apache Beam."""
