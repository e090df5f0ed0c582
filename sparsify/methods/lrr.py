"""`lrr`: learning-rate rewinding (Renda, Frankle & Carbin 2020). After each pruning the surviving
weights keep their final values; only the learning-rate schedule is rewound to step k =
`prune.rewind` and replayed to its end (T − k iterations)."""

from sparsify.methods.base import METHODS
from sparsify.methods.retraining import Retraining


@METHODS.register("lrr")
class LearningRateRewinding(Retraining):
    policy = "lrr"
