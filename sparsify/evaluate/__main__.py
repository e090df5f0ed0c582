"""`python -m sparsify.evaluate RUN_DIR [eval=OPTION] [eval.KEY=VALUE ...] [backend=...] [device=...]`:
evaluate the trained levels of an existing run again, with other evaluators or settings, without
retraining anything.

`python -m sparsify.evaluate --weights PRUNED.pt --dense DENSE.pt --out DIR [model=...] [data=...]
[eval=...]`: evaluate your own pruned state_dict against your dense one (see imported.py); DIR
becomes a run directory of two levels, dense and pruned.

The training config comes from the run's config.yaml; only the evaluation (`eval`, `eval.*`), the
execution backend (`backend`, `backend.*`) and `device` may be given, in Hydra's override syntax.
Each level's results that are already on disk for these settings are reused; the others are
computed and stored beside them. metrics.json, results.json and the report are rewritten; the
training files (config.yaml, init.pt, final.pt, mask.pt, training.json, checkpoint.pt, log.jsonl)
are not touched.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from sparsify.errors import UserError

EVALUATION_KEYS = ("eval", "backend", "device")
TRAINING_KEYS = ("data", "model", "prune", "train", "seed")


def _evaluation_config(saved: dict[str, Any], overrides: list[str]) -> DictConfig:
    """The saved training settings with the evaluation settings composed from `overrides`
    (`device` defaults to the run's own), checked as `python -m sparsify` checks them."""
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".", 1)[0].split("/", 1)[0] not in EVALUATION_KEYS:
            raise UserError(
                f"{override!r}: sparsify.evaluate changes only the evaluation "
                f"({', '.join(EVALUATION_KEYS)} and their keys); to train differently, run "
                "python -m sparsify"
            )
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from sparsify.compose import compose
    from sparsify.validate import check_backend, check_device, check_eval, known_keys

    if not any(o.lstrip("+~").split("=", 1)[0] == "device" for o in overrides):
        overrides = [*overrides, f"device={saved.get('device', 'auto')}"]
    try:
        composed = compose(overrides, validate=False)
        cfg = OmegaConf.create({k: saved[k] for k in TRAINING_KEYS if k in saved})
        for key in EVALUATION_KEYS:  # typed nodes: the evaluators' settings keep their schema
            cfg[key] = composed[key]
        known_keys(cfg.eval, None, "eval.")
        known_keys(cfg.backend, None, "backend.")
        check_device(cfg)
        check_eval(cfg)
        check_backend(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        cause = e.__cause__ or e
        raise UserError(" ".join(str(cause).split("\n")[0].split())) from None
    return cfg


def evaluate_run(run_dir: Path, overrides: list[str] = ()) -> Optional[dict[str, Any]]:
    """Evaluate the trained levels of the run in `run_dir` as `overrides` say. Returns the
    results.json content, or None for a run whose levels are not all trained yet (its trained
    levels are evaluated and their metrics.json written; results.json is not)."""
    from sparsify.evaluate.stage import EvaluationStage, skipped
    from sparsify.run import level_line, prepare, publish, resolve_device
    from sparsify.rundir import RunDir

    rd = RunDir(Path(run_dir))
    if not rd.path.is_dir():
        raise UserError(f"{rd.path} is not a folder; give the run directory of a sparsify run")
    saved = rd.saved_config()
    cfg = _evaluation_config(saved, list(overrides))
    device = resolve_device(str(cfg.device))
    prepared = prepare(cfg, rd)  # the run's data, model, method and levels; writes nothing
    method, view = prepared.method, prepared.view
    levels = view.trained_levels()
    if not levels:
        raise UserError(f"{rd.path} has no trained level yet; nothing to evaluate")
    stage = EvaluationStage(cfg, prepared.data, view, device)
    for note in skipped(cfg):
        print(f"sparsify: {note}")
    if not stage.ready(levels[-1]):
        raise UserError(
            f"eval.dense_level={stage.dense_level}: that level is not trained yet; evaluate "
            "against it once it is"
        )
    records = []
    for level in levels:
        record = stage.evaluate(view.record(level))
        if rd.save_metrics(record):
            print(level_line(record, stage, method.num_levels()))
        records.append(record)
    if len(levels) < method.num_levels():
        print(
            f"sparsify: {len(levels)} of {method.num_levels()} levels are trained; their "
            "metrics.json are written, results.json and the report once the run finishes"
        )
        return None
    return publish(rd, saved, stage, records).to_json()


def _import(args: list[str]) -> tuple[Path, Optional[dict[str, Any]]]:
    """`--weights W --dense D --out DIR [overrides]` (sparsify/evaluate/imported.py)."""
    from sparsify.evaluate.imported import import_and_evaluate

    flags: dict[str, str] = {}
    rest = list(args)
    while rest and rest[0].startswith("--"):
        flag = rest.pop(0)
        if flag not in ("--weights", "--dense", "--out") or not rest:
            raise UserError(
                f"{flag}: give --weights PRUNED.pt --dense DENSE.pt --out DIR, then overrides"
            )
        flags[flag] = rest.pop(0)
    missing = [f for f in ("--weights", "--dense", "--out") if f not in flags]
    if missing:
        raise UserError(f"missing {', '.join(missing)}: give --weights, --dense and --out")
    out = Path(flags["--out"])
    return out, import_and_evaluate(Path(flags["--weights"]), Path(flags["--dense"]), out, rest)


def main(argv: list[str] | None = None) -> None:
    from sparsify.errors import exit_with

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if args else 2)
    from sparsify.allocator import keep_freed_memory_at_start

    keep_freed_memory_at_start()  # corrupted batches are allocated and freed per batch
    try:
        if args[0].startswith("--"):
            run_dir, results = _import(args)
        else:
            run_dir, results = Path(args[0]), evaluate_run(Path(args[0]), args[1:])
    except UserError as e:
        exit_with(e)
    if results is not None:
        from sparsify.rundir import RunDir

        rd = RunDir(run_dir)
        print(f"results: {rd.results_path}\nreport:  {rd.report_path('md')}")


if __name__ == "__main__":
    main()
