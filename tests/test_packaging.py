"""The wheel: it ships conf/ and the kernels inside the `sparsify` package, and an installed copy
runs from any working directory."""

import json
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("sparsify-*.whl")
    return whl


def test_wheel_ships_configs_and_kernels_inside_the_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    # every config file of the checkout, so a new group folder cannot be left out of the wheel
    shipped = sorted(
        f"sparsify/conf/{p.relative_to(ROOT / 'conf')}" for p in (ROOT / "conf").rglob("*.yaml")
    )
    assert "sparsify/conf/config.yaml" in shipped
    assert [n for n in shipped if n not in names] == []
    assert "sparsify/kernels/__init__.py" in names
    # every module of the sparsify package, so a new subpackage cannot be left out either
    modules = sorted(
        f"sparsify/{p.relative_to(ROOT / 'sparsify')}" for p in (ROOT / "sparsify").rglob("*.py")
    )
    assert [m for m in modules if m not in names] == []
    # never a top-level `kernels` (another PyPI package) or `conf`
    assert not any(n.startswith(("kernels/", "conf/")) for n in names)


@pytest.mark.slow
def test_installed_wheel_runs_from_any_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(purelib),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    # The dependencies (torch, hydra, ...) come from this environment; sparsify from the wheel.
    deps = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    (purelib / "deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [
            python,
            "-c",
            "import sparsify, sparsify.kernels, sparsify.compose as m; print(sparsify.__file__); print(m.config_dir())",
        ],
        cwd=elsewhere,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(purelib) for p in where), where
    proc = subprocess.run(
        [
            python,
            "-m",
            "sparsify",
            "prune=dense",
            "train.epochs=1",
            "data=synthetic",
            "data.num_samples=64",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (results,) = elsewhere.glob("runs/*/results.json")
    assert json.loads(results.read_text())["method"] == "dense"
