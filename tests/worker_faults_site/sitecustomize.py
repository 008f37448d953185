"""Run at the start of every Python process whose PYTHONPATH holds this directory (site.py)."""

import worker_faults

worker_faults.install()
