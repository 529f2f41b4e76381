"""``shlex.split(text, comments=True)`` in linear time.

The standard library's tokenizer grows each token one character at a time (``self.token += c`` on an
attribute, which CPython cannot do in place), so a single 2 MB word costs minutes. This splitter
gives the same words and the same errors (POSIX mode: quotes, backslash escapes, ``#`` comments,
also inside a word) by taking runs of ordinary characters at once.
"""

from __future__ import annotations

from runbook.model.lazyre import lazy_re

_WHITESPACE = " \t\r\n"
_PLAIN = lazy_re(r"[^ \t\r\n'\"\\#]+")
_PLAIN_NO_COMMENTS = lazy_re(r"[^ \t\r\n'\"\\]+")
_IN_DOUBLE = lazy_re(r'[^"\\]+')


def _after_newline(text: str, i: int) -> int:
    j = text.find("\n", i)
    return len(text) if j < 0 else j + 1


def split(text: str, *, comments: bool = False) -> list[str]:
    """The words of ``text`` as ``shlex.split(text, comments=comments)`` gives them; ValueError
    ("No closing quotation", "No escaped character") where shlex raises it."""
    plain = _PLAIN if comments else _PLAIN_NO_COMMENTS
    words: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            return words
        if comments and text[i] == "#":
            i = _after_newline(text, i)
            continue
        parts: list[str] = []
        while i < n:
            c = text[i]
            if c in _WHITESPACE:
                i += 1
                break
            if c == "#" and comments:
                i = _after_newline(text, i)
                break
            if c == "'":
                j = text.find("'", i + 1)
                if j < 0:
                    raise ValueError("No closing quotation")
                parts.append(text[i + 1 : j])
                i = j + 1
            elif c == '"':
                i = _double_quoted(text, i + 1, parts)
            elif c == "\\":
                if i + 1 >= n:
                    raise ValueError("No escaped character")
                parts.append(text[i + 1])
                i += 2
            else:
                m = plain.match(text, i)
                assert m is not None
                parts.append(m.group())
                i = m.end()
        words.append("".join(parts))


def _double_quoted(text: str, i: int, parts: list[str]) -> int:
    """Append the inside of a double-quoted string starting at ``i``; the index after its end."""
    n = len(text)
    while True:
        m = _IN_DOUBLE.match(text, i)
        if m:
            parts.append(m.group())
            i = m.end()
        if i >= n:
            raise ValueError("No closing quotation")
        if text[i] == '"':
            return i + 1
        # a backslash: it escapes only '"' and '\' inside double quotes, else it stays
        if i + 1 >= n:
            raise ValueError("No escaped character")
        nxt = text[i + 1]
        parts.append(nxt if nxt in '"\\' else "\\" + nxt)
        i += 2
