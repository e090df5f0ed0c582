"""`shift`: accuracy on released test sets drawn from a shifted distribution (CIFAR-10.1, Recht et
al. 2019: new CIFAR-10 test images collected the same way), and the excess error of Lost in
Pruning against the dense parent: (E_shift − E_clean) − (E^dense_shift − E^dense_clean).

`eval.shift.cifar10_1=PATH` names the folder of `cifar10.1_v6_data.npy` and
`cifar10.1_v6_labels.npy`; the files are opened and checked (shape, labels, image side) before
any work. Each set is a distribution of its own for the other evaluators and prune potential.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sparsify.errors import UserError
from sparsify.evaluate.base import EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext
from sparsify.evaluate.distributions import clean, shifted

SETS = ("cifar10_1",)  # setting name -> the distribution named after it


@dataclass
class ShiftSettings:
    cifar10_1: Optional[str] = None  # folder of CIFAR-10.1's .npy files

    def check(self, where: str) -> None:
        for name in SETS:
            path = getattr(self, name)
            if path is not None and not Path(path).expanduser().is_dir():
                raise UserError(f"{where}.{name}={path}: not a folder")

    def given(self) -> list[str]:
        return [name for name in SETS if getattr(self, name) is not None]


METRICS = {
    "shift_accuracy": MetricSpec(
        "accuracy on shifted test sets (mean)", percent=True, higher_is_better=True, plot=True
    ),
    "shift_excess_error": MetricSpec(
        "excess error on shifted test sets", percent=True, higher_is_better=False
    ),
}


def _prepare(settings: ShiftSettings, data, inputs, batch_size: int) -> None:
    from sparsify.data.released import cifar10_1

    if not settings.given():
        raise UserError(
            "evaluator shift needs a released test set: eval.shift.cifar10_1=PATH (the folder "
            "of cifar10.1_v6_data.npy and cifar10.1_v6_labels.npy)"
        )
    if settings.cifar10_1 is not None:
        if data.num_classes != 10:
            raise UserError(
                f"eval.shift.cifar10_1: CIFAR-10.1 has 10 classes, data has {data.num_classes}"
            )
        inputs.shift_loaders["cifar10_1"] = cifar10_1(
            Path(settings.cifar10_1).expanduser(),
            side=data.image_size,
            stats=data.stats,
            batch_size=int(batch_size),
        )


@evaluator("shift", metrics=METRICS, settings=ShiftSettings, prepare=_prepare)
def shift(ctx: EvalContext) -> EvalResult:
    names = ctx.settings.given()
    rows, errs, dense_errs = [], [], []
    for name in names:
        out = ctx.outputs(shifted(name))
        ref = ctx.dense_outputs(shifted(name))
        rows.append([name, out.accuracy, None if ref is None else ref.accuracy])
        errs.append(out.error)
        if ref is not None:
            dense_errs.append(ref.error)
    scalars = {"shift_accuracy": 1.0 - sum(errs) / len(errs)}
    if len(dense_errs) == len(errs):
        clean_err, dense_clean = ctx.outputs(clean()).error, ctx.dense_outputs(clean()).error
        scalars["shift_excess_error"] = (sum(errs) / len(errs) - clean_err) - (
            sum(dense_errs) / len(dense_errs) - dense_clean
        )
    table = {"columns": ["set", "accuracy", "dense_accuracy"], "rows": rows}
    return EvalResult(scalars=scalars, tables={"sets": table})
