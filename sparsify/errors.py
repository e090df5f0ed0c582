"""The one exception type for mistakes a user can make (bad config, missing files, bad checkpoint).

The entry point turns it into a one-line message on stderr and a non-zero exit, with no traceback.
Internal invariants use `assert` instead.
"""


class UserError(Exception):
    """A problem in the user's input; the message says what is wrong and what would be valid."""
