"""The one exception type for mistakes a user can make (bad config, missing files, bad checkpoint).

The entry point turns it into a one-line message on stderr and a non-zero exit, with no traceback.
Internal invariants use `assert` instead.
"""

import os
import sys
from typing import NoReturn


class UserError(Exception):
    """A problem in the user's input; the message says what is wrong and what would be valid."""


def other_rank() -> bool:
    """Whether this process is a torchrun rank other than 0 (which leave messages to rank 0)."""
    world = os.environ.get("WORLD_SIZE", "1")
    return world.isdigit() and int(world) > 1 and os.environ.get("RANK", "0") != "0"


def exit_with(error: UserError, context: str = "") -> NoReturn:
    """End the program the way every user error ends: one line on stderr, exit status 2. Under
    torchrun only rank 0 prints it (every rank checks the same config)."""
    if not other_rank():
        print(f"sparsify: error: {context}{error}", file=sys.stderr)
    sys.exit(2)
