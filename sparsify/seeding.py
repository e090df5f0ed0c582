"""Every seeded random stream of sparsify, and the one way to make a generator for it.

A random choice never comes from global RNG state (except the initialisation and training, which
draw from torch's, seeded by `seed`): it comes from a `torch.Generator` seeded by a tuple of
integers, a stream tag first. The same tuple gives the same draws in any process, whatever ran
before, so a resumed run recomputes them exactly. The tags and sub-keys below are the complete
list: a new purpose takes a new number here, so no two purposes can share a stream by accident.
"""

from __future__ import annotations

import numpy as np
import torch

# Stream tags keep the draws of different purposes independent even when seed and epoch match.
ORDER_STREAM = 0  # (seed, epoch): the shuffle order of a training epoch
AUGMENT_STREAM = 1  # (seed, epoch, batch): the augmentation draws of one batch
SPLIT_STREAM = 2  # (split_seed, ...): which samples are held out
SAMPLE_SEED_STREAM = 3  # (seed, epoch): per-sample seeds of file-backed augmentation
SYNTHETIC_STREAM = 4  # (split_seed, ...): the generated synthetic dataset
METHOD_STREAM = 5  # (seed, key, ...): pruning methods' own draws, keys below
EVAL_STREAM = 6  # (seed, level, evaluator hash): an evaluator's own draws (EvalContext.generator)
CORRUPTION_STREAM = 7  # (seed, corruption, severity, batch): a corrupted evaluation batch
NOISE_STREAM = 8  # (seed, radius in 1e-6, sample, batch): uniform input noise (fidelity)

# Keys within METHOD_STREAM (Context.generator(key, ...)).
MASK_DRAWS = 1  # (level): the `random` criterion's scores
RESTART_DRAWS = 2  # (level): prune.restart=reshuffle's permutations
TIE_DRAWS = 3  # (level): prune.ties=random's choice among weights tied at the cut
RANDOM_PRUNING_DRAWS = 4  # (level): prune=random's choice of surviving weights
FROZEN_WEIGHTS = 11  # supermask / edgepopup: the frozen random weights
SCORE_INIT = 12  # supermask / edgepopup: the scores' initialisation
FRESH_INIT = 1000  # (level): prune.restart=reinit's new initialisation


def seeded_generator(*keys: int) -> torch.Generator:
    """A CPU generator whose state depends on every integer in `keys` (any sign, any size).

    numpy's SeedSequence mixes the keys so that nearby tuples, e.g. (0, 1, 2) and (0, 2, 1), give
    unrelated streams; a plain arithmetic combination would let them collide.
    """
    entropy = [int(k) % 2**64 for k in keys]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint64)
    gen = torch.Generator()
    gen.manual_seed(int(state[0]) >> 1)  # 63 bits: manual_seed accepts any value in int64 range
    return gen
