"""scripts/bench_kernels.py --smoke: the whole benchmark on tiny shapes in the interpreter, its
JSON and the table it writes into a docs file between its markers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_kernels.py"


@pytest.mark.slow
def test_the_smoke_benchmark_writes_its_json_and_its_table(tmp_path):
    docs = tmp_path / "performance.md"
    docs.write_text(
        "# before\n<!-- bench_kernels:begin -->\nold table\n<!-- bench_kernels:end -->\nafter\n"
    )
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    kinds = {r["kind"] for r in result["layers"]}
    assert {"torch", "winograd F(2x2)", "winograd F(4x4)", "bsr (block)"} <= kinds
    assert "csr (unstructured)" in kinds
    for r in result["layers"]:
        # fp32 everywhere in the smoke run: kernels agree with float64 to fp32 rounding
        assert r["error"] < 1e-5, r
        assert r["ms"] > 0 and r["speedup"] > 0
    model = result["model"]
    assert model["weight_sparsity"] == pytest.approx(0.9, abs=0.02)
    assert model["error"] < 1e-5 and model["kernels"]
    text = docs.read_text()
    assert "old table" not in text and text.startswith("# before\n") and text.endswith("after\n")
    assert "| tiny.a | 2 | winograd F(2x2) |" in text and "End to end: conv2" in text


def test_the_benchmark_refuses_docs_without_markers(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_kernels
    finally:
        sys.path.pop(0)
    docs = tmp_path / "performance.md"
    docs.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="markers"):
        bench_kernels.write_docs(docs, "table")
    assert docs.read_text() == "no markers here\n"
    with pytest.raises(SystemExit, match="cannot read"):
        bench_kernels.check_docs(tmp_path / "missing.md")


@pytest.mark.slow
def test_a_time_limit_measures_the_model_and_lists_the_layers_it_skipped(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--time-limit", "0.001"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["layers"] == []  # past the limit before the first layer
    assert result["not_measured"] == ["tiny.a batch 2", "tiny.b batch 2", "tiny.fc batch 2"]
    assert result["model"]["error"] < 1e-5  # the end-to-end model is measured first, always
    assert "Not measured (past --time-limit): tiny.a batch 2" in proc.stdout


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_a_time_limit_that_is_not_positive_is_refused(tmp_path, value):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--time-limit", value]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--time-limit" in proc.stderr and not out.exists()
