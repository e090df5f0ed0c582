"""`lth`: lottery tickets, iterative magnitude pruning with rewinding (Frankle & Carbin 2019).

Level 0 trains dense; level L prunes `prune.rate` of the weights still alive by magnitude of level
L-1's final weights (global by default) and rewinds the survivors to initialisation
(`prune.rewind=0it`, the default) or to their values at step k (Frankle et al. 2020), then
retrains with the original schedule from k. Zhou et al.'s ablations: `prune.criterion`,
`prune.restart`. See methods/retraining.py for the shared machinery.
"""

from sparsify.methods.base import METHODS
from sparsify.methods.retraining import Retraining


@METHODS.register("lth")
class LotteryTicket(Retraining):
    policy = "rewind"
