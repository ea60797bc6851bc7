"""The one error every release step raises when it cannot go ahead."""


class ReleaseError(RuntimeError):
    """A release step cannot go ahead; the message says why and what to change."""
