"""MkDocs hooks that render the repository's Markdown and docstrings as a site.

- A page may link to a file of the repository outside ``docs/`` (``../examples/x.py``): the link
  works where the Markdown is read in the repository, but the site has no copy of that file, so
  on the site the link becomes its text.
- Docstrings carry Sphinx roles (``:class:`X```, rendered as ``:class:<code>X</code>``); the site
  shows the code alone.
"""

from __future__ import annotations

import posixpath
import re

_FENCE = re.compile(r"^(```.*?^```)", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj|math|ref):(?=<code>)")


def _outside_docs(page_path: str, target: str) -> bool:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return False  # a URL, an anchor on the page, or an absolute path
    path = target.split("#")[0]
    return posixpath.normpath(posixpath.join(posixpath.dirname(page_path), path)).startswith("..")


def unlink_outside_docs(markdown: str, page_path: str) -> str:
    """``markdown`` with its links to files outside ``docs/`` replaced by their text."""
    parts = _FENCE.split(markdown)
    for i in range(0, len(parts), 2):  # even parts are outside fenced blocks
        parts[i] = _LINK.sub(
            lambda m: m.group(1) if _outside_docs(page_path, m.group(2)) else m.group(0),
            parts[i],
        )
    return "".join(parts)


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    return unlink_outside_docs(markdown, page.file.src_uri)


def on_page_content(html: str, **kwargs) -> str:
    return _ROLE.sub("", html)
