"""sparsify.kernels: Triton kernels for sparse and Winograd convolution.

This folder installs as `sparsify.kernels` (never as a top-level `kernels`, which is another
PyPI package). The kernels and the `triton` backend are being built in their own issue; until
then runs use the `torch` execution path only.
"""

__all__: list[str] = []
