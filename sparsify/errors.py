"""The one exception type for mistakes a user can make (bad config, missing files, bad checkpoint).

The entry point turns it into a one-line message on stderr and a non-zero exit, with no traceback.
Internal invariants use `assert` instead.
"""

import sys
from typing import NoReturn


class UserError(Exception):
    """A problem in the user's input; the message says what is wrong and what would be valid."""


def exit_with(error: UserError, context: str = "") -> NoReturn:
    """End the program the way every user error ends: one line on stderr, exit status 2."""
    print(f"sparsify: error: {context}{error}", file=sys.stderr)
    sys.exit(2)
