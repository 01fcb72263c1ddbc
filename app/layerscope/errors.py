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
