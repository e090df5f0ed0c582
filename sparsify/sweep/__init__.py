"""Sweeps read as one experiment: the sweep manifest, the runs it covers, the sweep report."""

from sparsify.sweep.collect import Sweep, collect_sweep
from sparsify.sweep.manifest import Manifest, read_manifest, write_manifest

__all__ = ["Manifest", "Sweep", "collect_sweep", "read_manifest", "write_manifest"]
