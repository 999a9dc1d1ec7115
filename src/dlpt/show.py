"""Show the source of a function or class, highlighted, in a notebook."""

from __future__ import annotations

import inspect
import textwrap

__all__ = ["show"]


def show(obj) -> None:
    """Display the source of ``obj`` (a function, class or module), highlighted.

    In a notebook it renders as highlighted code; elsewhere it prints plain text.
    """
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (TypeError, OSError) as exc:
        raise TypeError(f"cannot show the source of {obj!r}: {exc}") from None
    try:
        from IPython import get_ipython
        from IPython.display import Code, display
    except ImportError:
        print(source)
        return
    if get_ipython() is None:
        print(source)
        return
    display(Code(source, language="python"))
