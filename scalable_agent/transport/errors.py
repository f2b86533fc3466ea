"""Errors raised by the transport, to the actor or to the learner's callers.

Each is also a builtin error type where one fits (`ValueError`,
`ConnectionError`), so that callers that know nothing of the transport still
catch them sensibly.
"""


class TransportError(Exception):
  """Base class of the errors raised by this package."""


class UnrollRejectedError(TransportError, ValueError):
  """The learner (or the sender's own check) rejected unrolls.

  Wrong structure, dtype or shape. The learner keeps running; the rejected
  unrolls are not enqueued.
  """


class LearnerUnavailableError(TransportError, ConnectionError):
  """The learner could not be reached within the timeout."""


class LearnerClosedError(TransportError, ConnectionError):
  """The learner closed its queue: it is shutting down."""
