"""One exception type for every mistake a user can make.

It subclasses ``ValueError`` so API callers can catch the standard type, while the
CLI turns it into one line on stderr with exit status 2 and the app into a
notification. Anything else that escapes is a bug and keeps its traceback.
"""


class LayerscopeError(ValueError):
    """A problem with the user's input, phrased as one line they can act on."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's text: enough to act on, short enough for a status line."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]


def with_article(noun: str) -> str:
    """``an int``, ``a folder``: messages that read as English whatever the noun."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


# What kind of mistake, for API callers who handle one and not another. Every kind is a
# ``LayerscopeError`` (so a ``ValueError``): the CLI and the app treat them all alike, one line.


class NotFoundError(LayerscopeError):
    """A file, model, weights set or layer that does not exist (the message names close matches)."""


class UnsafeFileError(LayerscopeError):
    """A file refused unread because reading it could run its code (``--trust`` allows that) or
    claim unbounded memory (a zip, pickle or image bomb: refused even with ``--trust``)."""


class BadFileError(LayerscopeError):
    """A file that exists but is not what it should be: damaged, another format, or a
    state dict that does not fit the model."""


class BadArgumentError(LayerscopeError):
    """An option or argument value layerscope cannot use (a malformed ``--input``, an unknown
    device, an ``--alpha`` out of range)."""


class UnavailableError(LayerscopeError):
    """Something this machine lacks: a device, the network, an optional package, memory."""
