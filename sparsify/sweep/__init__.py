"""Sweeps read as one experiment: the sweep manifest (manifest.py), the runs it covers
(collect.py), failed jobs (failures.py) and the sweep report (report.py, __main__.py). Nothing is
imported here, so that the manifest's constants stay cheap to import (tracking.py,
hydra_callbacks.py)."""
