"""A griffe extension that reads the codebase's docstrings as written, for the API reference.

- ``a, b: description`` in an ``Args:`` section documents ``a`` and ``b``. The codebase documents
  parameters that go together on one line (``t0, t1: start and end times``); griffe's
  Google-style parser would read one parameter named ``"t0, t1"`` and report it as absent from
  the signature. Such an entry is split into one entry per name, each with the whole
  description, before the docstring is parsed, so the check for documented parameters that do
  not exist stays on for every name.
- The math the docstrings carry in reStructuredText (``:math:`x``` and ``.. math::`` blocks)
  becomes ``$x$`` and ``$$ … $$``, which ``pymdownx.arithmatex`` hands to MathJax.
"""

from __future__ import annotations

import re

from griffe import Extension

_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Other Parameters):\s*$")
_COMBINED = re.compile(r"^(\s+)(\**\w+(?:,\s*\**\w+)+)(\s*(?:\([^)]*\))?:.*)$")


def split_combined_parameters(text: str) -> str:
    """``text`` with each ``a, b: description`` item of a parameters section split by name."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        header = _SECTION.match(lines[i])
        i += 1
        if not header:
            continue
        section_indent = len(header.group(1))
        while i < len(lines):
            line = lines[i]
            indent = len(line) - len(line.lstrip())
            if line.strip() and indent <= section_indent:
                break  # the section ended
            item = _COMBINED.match(line)
            if not item:
                out.append(line)
                i += 1
                continue
            body = [item.group(3)]
            i += 1
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
            ):
                if not lines[i].strip() and (
                    i + 1 >= len(lines) or len(lines[i + 1]) - len(lines[i + 1].lstrip()) <= indent
                ):
                    break
                body.append("\n" + lines[i])
                i += 1
            for name in re.split(r",\s*", item.group(2)):
                out.append(f"{item.group(1)}{name}{''.join(body)}")
    return "\n".join(out)


_INLINE_MATH = re.compile(r":math:`([^`]+)`")
_MATH_BLOCK = re.compile(r"^(\s*)\.\. math::\s*$")


def rst_math_to_arithmatex(text: str) -> str:
    """``:math:`x``` → ``$x$``; a ``.. math::`` block → one ``$$`` block per group of lines
    (``aligned`` when it aligns on ``&``)."""
    text = _INLINE_MATH.sub(lambda m: f"${m.group(1)}$", text)
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        block = _MATH_BLOCK.match(lines[i])
        if not block:
            out.append(lines[i])
            i += 1
            continue
        indent = block.group(1)
        i += 1
        groups: list[list[str]] = [[]]
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            if lines[i].strip():
                groups[-1].append(lines[i].strip())
            elif groups[-1]:
                groups.append([])
            i += 1
        for group in filter(None, groups):
            body = "\n".join(group)
            if "&" in body:
                body = "\\begin{aligned}\n" + body + "\n\\end{aligned}"
            out += ["", f"{indent}$$"] + [f"{indent}{line}" for line in body.split("\n")]
            out += [f"{indent}$$", ""]
    return "\n".join(out)


class SplitCombinedParameters(Extension):
    """Apply :func:`split_combined_parameters` and :func:`rst_math_to_arithmatex` to every
    docstring griffe loads."""

    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            text = split_combined_parameters(obj.docstring.value)
            obj.docstring.value = rst_math_to_arithmatex(text)
