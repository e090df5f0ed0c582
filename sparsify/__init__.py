"""sparsify: end-to-end pruning and sparsity experiments for PyTorch."""

__version__ = "0.1.0"
