"""Where the configs live, and the config the CLI would build, for notebooks and tests:
`compose(["model=resnet20"])`.

from sparsify.compose import compose
from sparsify.run import run
cfg = compose(["prune=magnitude", "prune.sparsity=0.8"])
results = run(cfg, Path("runs/mine"))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf


def config_dir() -> str:
    """conf/ inside an installed package, else beside the package in a checkout (absolute)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise SystemExit("sparsify: error: cannot find the conf/ folder of configs")


def _run_name(*, _root_: DictConfig) -> str:
    """Resolver behind hydra.run.dir: the run's name, from everything but the hydra node."""
    from sparsify.identity import run_name

    config = {}
    for key in _root_:
        if key == "hydra":
            continue
        value = _root_[key]
        config[key] = (
            OmegaConf.to_container(value, resolve=True)
            if isinstance(value, (DictConfig, ListConfig))
            else value
        )
    return run_name(config)


def register() -> None:
    """Register the schema with Hydra's ConfigStore and the `sparsify_run_name` resolver that
    conf/config.yaml's hydra.run.dir uses. Idempotent."""
    from sparsify.config import register_configs

    register_configs()
    if not OmegaConf.has_resolver("sparsify_run_name"):
        OmegaConf.register_new_resolver("sparsify_run_name", _run_name)


def compose(overrides: Sequence[str] = (), validate: bool = True) -> DictConfig:
    """Compose conf/config.yaml with `overrides` (Hydra syntax) and, by default, validate it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides))
    if validate:
        from sparsify.validate import validate as check

        check(cfg)
    return cfg
