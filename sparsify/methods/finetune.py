"""`finetune`: fine-tuning (the baseline of Renda, Frankle & Carbin 2020). After each pruning the
surviving weights keep their final values and train at a fixed learning rate, the schedule's last
(or `prune.finetune_lr`), for the same budget as rewinding: T − k iterations, k = `prune.rewind`."""

from sparsify.methods.base import METHODS
from sparsify.methods.retraining import Retraining


@METHODS.register("finetune")
class FineTuning(Retraining):
    policy = "finetune"
