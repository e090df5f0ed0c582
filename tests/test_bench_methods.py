"""scripts/bench_methods.py and bench_train.py on a tiny model: they run, keep freed memory as
`python -m sparsify` does, and charge every registered method."""

import json
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sparsify.methods import METHODS

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
TINY = ["--image-size", "8", "--batch", "2", "--blocks", "4", "--steps", "1"]


def _run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "SPARSIFY_MALLOC": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_bench_methods_charges_every_registered_method():
    out = _run("bench_methods.py", *TINY)
    assert out.startswith("allocator: kept" if GLIBC else "allocator: unchanged")
    rows = dict(re.findall(r"^\| (\w+) \| \d+ \| \d+ \| ([\d.]+) \|$", out, re.M))
    assert set(rows) == set(METHODS.names())
    assert float(rows["dense"]) == 1.0
    for method, ratio in rows.items():  # every method adds work to a plain step
        assert float(ratio) >= 1.0, (method, ratio)
    for method in ("supermask", "edgepopup"):
        assert re.search(rf"^{method}: mask work [\d.]+ ms.*median [\d.]+, quartiles", out, re.M)


@pytest.mark.slow
def test_bench_train_writes_its_figures(tmp_path):
    out = tmp_path / "train.json"
    _run("bench_train.py", *TINY, "--json", str(out))
    figures = json.loads(out.read_text())
    assert figures["allocator"].startswith("kept" if GLIBC else "unchanged")
    assert figures["ratio"] > 0 and figures["mask_work_s"] > 0
