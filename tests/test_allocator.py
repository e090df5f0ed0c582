"""sparsify.allocator: on glibc, freed memory is reused instead of being returned to the kernel and
faulted back in page by page; the user's own allocator settings win. Each check runs in a fresh
interpreter, since the setting is process-wide."""

import os
import platform
import subprocess
import sys

import pytest

from sparsify.allocator import _user_choice

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Five training steps of a model whose activations (48 MiB) exceed the 32 MiB ceiling of glibc's
# dynamic mmap threshold, after three warm-up steps: by default every such block is a fresh
# mmap, faulted in page by page at every step and unmapped at its free.
PROBE = """import resource, sys
from sparsify.allocator import keep_freed_memory
print(keep_freed_memory(), file=sys.stderr)
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 256, 1), torch.nn.ReLU())
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(48, 3, 32, 32)
def step():
    opt.zero_grad(set_to_none=True)
    model(x).square().mean().backward()
    opt.step()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
before = faults()
for _ in range(5):
    step()
print((faults() - before) // 5)
"""


def _faults_per_step(**env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
    clean = {k: v for k, v in clean.items() if not k.startswith(("MALLOC_", "SPARSIFY_MALLOC"))}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def _huge_pages_always() -> bool:
    """With transparent huge pages always on, a fresh 48 MiB mmap faults in 2 MiB pages, a few
    dozen faults: too few to tell the two settings apart by counting."""
    try:
        return "[always]" in open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return False


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
@pytest.mark.skipif(_huge_pages_always(), reason="transparent huge pages are always on")
def test_freed_memory_is_reused_not_faulted_back_in():
    default = _faults_per_step(SPARSIFY_MALLOC="system")  # glibc's own behaviour
    assert default > 50_000
    # Mostly 0; an occasional step still grows the heap where an aligned block does not fit a
    # freed one.
    assert _faults_per_step() < default / 20


def test_the_users_own_allocator_settings_win(monkeypatch):
    for name in ("SPARSIFY_MALLOC", "GLIBC_TUNABLES", "LD_PRELOAD", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"):
        monkeypatch.delenv(name, raising=False)
    assert _user_choice() is None
    monkeypatch.setenv("SPARSIFY_MALLOC", "System")
    assert _user_choice() == "SPARSIFY_MALLOC=system"
    monkeypatch.setenv("SPARSIFY_MALLOC", "")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    assert "GLIBC_TUNABLES" in _user_choice()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.rtld.nns=2")  # not malloc's: ours still apply
    assert _user_choice() is None
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert "MALLOC_TRIM_THRESHOLD_" in _user_choice()
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert "jemalloc" in _user_choice()


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
@pytest.mark.parametrize(
    "module, argv",
    [
        ("sparsify.__main__", "['sparsify', '--cfg', 'job']"),
        ("sparsify.evaluate.__main__", "['e', '/nonexistent']"),
    ],
)
def test_the_cli_keeps_freed_memory(module, argv):
    """`python -m sparsify` calls it before composing the config, so training runs with it;
    `python -m sparsify.evaluate` before it evaluates (each corrupted batch is freed)."""
    probe = (
        "import sys, sparsify.allocator as a\n"
        "calls = []\n"
        "real = a.keep_freed_memory\n"
        "a.keep_freed_memory = lambda: calls.append(1) or real()\n"
        f"sys.argv = {argv}\n"
        f"from {module} import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('calls', len(calls), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "calls 1" in out.stderr, out.stderr
