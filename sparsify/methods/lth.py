"""`lth`: lottery tickets, iterative magnitude pruning with rewinding (Frankle & Carbin 2019).

Level 0 trains dense; level L prunes `prune.rate` of the weights still alive by magnitude of level
L-1's final weights (global by default) and rewinds the survivors to initialisation
(`prune.rewind=0it`, the default) or to their values at step k (Frankle et al. 2020), then
retrains with the original schedule from k. Zhou et al.'s ablations: `prune.criterion`,
`prune.restart`, `prune.layer_rates`. See methods/retraining.py for the shared machinery.

Two options of the retraining family reproduce OpenLTH's counting (`pruning/sparse_global.py`):
`prune.count_excluded` counts the weights of excluded layers in the remaining weights, so the
whole level is taken from the prunable layers, and `prune.threshold=openlth` drops every live
weight at or below the n-th smallest live score, n = ceil(rate · remaining) (n + 1 weights, and
all ties). By default the count is exact over the prunable weights: round((1 − rate)^L · N)
kept, ties broken by position.
"""

from sparsify.methods.base import METHODS
from sparsify.methods.retraining import Retraining


@METHODS.register("lth")
class LotteryTicket(Retraining):
    policy = "rewind"
