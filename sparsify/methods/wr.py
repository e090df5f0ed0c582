"""`wr`: weight rewinding (Renda, Frankle & Carbin 2020). After each pruning, the surviving
weights AND the learning-rate schedule are rewound to step k = `prune.rewind` (default 1ep in
conf/prune/wr.yaml) and retrained from there to the end of the schedule."""

from sparsify.methods.base import METHODS
from sparsify.methods.retraining import Retraining


@METHODS.register("wr")
class WeightRewinding(Retraining):
    policy = "rewind"
