"""The config the CLI would build, for notebooks and tests: `compose(["model=resnet20"])`.

from sparsify.compose import compose
from sparsify.run import run
cfg = compose(["prune=magnitude", "prune.sparsity=0.8"])
results = run(cfg, Path("runs/mine"))
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from sparsify.__main__ import _config_dir, _run_name
from sparsify.config import register_configs


def compose(overrides: Sequence[str] = (), validate: bool = True) -> DictConfig:
    """Compose conf/config.yaml with `overrides` (Hydra syntax) and, by default, validate it."""
    register_configs()
    if not OmegaConf.has_resolver("sparsify_run_name"):
        OmegaConf.register_new_resolver("sparsify_run_name", _run_name)
    with initialize_config_dir(config_dir=_config_dir(), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides))
    if validate:
        from sparsify.validate import validate as check

        check(cfg)
    return cfg
