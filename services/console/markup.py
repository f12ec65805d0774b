"""HTML built by formatting, with every value escaped unless it is already markup.

`html(template, **values)` formats `template` with `values`, each escaped for text and
attribute contexts (`&`, `<`, `>`, `"`, `'`) unless it is a `Markup` made by another `html`
call or a number (kept a number, so that a template may format it: `{votes:,}`). Citizens
write the proposal texts a page shows, so nothing reaches a page unescaped by accident: only
templates, which are the console's own, are taken as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape


class Markup(str):
    """A string that is HTML already: inserted into a template as it is."""

    __slots__ = ()


def html(template: str, **values: object) -> Markup:
    """`template` with `{name}` fields filled from `values`, each escaped unless Markup."""
    return Markup(template.format(**{name: value if isinstance(value, Markup | int | float)
                                     else escape(str(value), quote=True)
                                     for name, value in values.items()}))


def join(parts: Iterable[Markup]) -> Markup:
    """Pieces of markup one after the other."""
    return Markup("".join(parts))
