"""Atomic writes (temporary file in the same folder + rename) and safe loads.

A reader never sees a half-written file: either the old one or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from sparsify.errors import UserError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` atomically."""
    _atomic(path, lambda f: torch.save(obj, f))


def save_json(obj: Any, path: Path) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    data = (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()
    _atomic(path, lambda f: f.write(data))


def save_text(text: str, path: Path) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    data = text.encode()
    _atomic(path, lambda f: f.write(data))


def save_bytes(data: bytes, path: Path) -> None:
    """Write raw bytes to `path` atomically."""
    _atomic(path, lambda f: f.write(data))


def load_torch(path: Path, what: str = "file") -> Any:
    """torch.load with weights_only=True; a corrupt or foreign file becomes a UserError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except Exception as e:  # pickle, zip and weights_only errors all mean "not a valid file"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{what} {path} is corrupt or not a sparsify file ({first})") from None


def load_json(path: Path, what: str = "file") -> Any:
    """Read JSON; a corrupt file becomes a UserError."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is corrupt ({e})") from None
