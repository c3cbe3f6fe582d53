"""Institution custom CSS, made safe to render inside a <style> element on every page.

`sanitize_css` parses the admin's text with tinycss2 and rebuilds it from what is allowed:

- at-rules: only @media, @supports, @container, @layer (with their rules checked recursively),
  @keyframes, @page and @font-face; @import, @charset, @namespace and anything unknown are dropped,
  and an @font-face whose src points anywhere but this site is dropped whole;
- declarations: dropped if the property is `behavior` or `-moz-binding`, if the value holds a
  url() (or an image-set() string) that is not a same-origin path under STATIC_URL or MEDIA_URL,
  an `expression(...)`, or a `javascript:`/`vbscript:` scheme anywhere;
- comments and anything that does not parse are dropped;
- every `<` in the output is written as the CSS escape `\\3c `, so `</style` cannot occur.

Text over MAX_CSS_BYTES raises CSSTooLarge (the branding form shows it as a field error).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote

import tinycss2
from django.conf import settings
from tinycss2 import ast

MAX_CSS_BYTES = 20 * 1024

# At-rules whose block holds rules (checked like the top level).
_RULE_BLOCK_AT_RULES = {"media", "supports", "container", "layer"}
# At-rules whose block holds declarations (or keyframe selectors with declarations).
_KEYFRAMES_AT_RULES = {"keyframes", "-webkit-keyframes"}
_DECLARATION_AT_RULES = {"page", "font-face"}
_FORBIDDEN_PROPERTIES = {"behavior", "-ms-behavior", "-moz-binding", "-o-link", "-o-link-source"}
# Functions whose string arguments are URLs.
_URL_STRING_FUNCTIONS = {
    "url",
    "src",
    "image-set",
    "-webkit-image-set",
    "image",
    "cross-fade",
    "-webkit-cross-fade",
}
_FORBIDDEN_WORDS = ("javascript:", "vbscript:", "expression", "-moz-binding", "behavior:")


class CSSTooLarge(ValueError):
    def __init__(self, size: int) -> None:
        super().__init__(
            f"Custom CSS is limited to {MAX_CSS_BYTES // 1024} KB (this is {size / 1024:.1f} KB)."
        )
        self.size = size


def sanitize_css(text: str) -> str:
    """The safe subset of `text`, re-serialised. Raises CSSTooLarge over MAX_CSS_BYTES."""
    size = len(text.encode("utf-8"))
    if size > MAX_CSS_BYTES:
        raise CSSTooLarge(size)
    return _sanitize(text)


def sanitize_css_or_empty(text: str) -> str:
    """For rendering: the sanitised CSS, or "" when it is too large (cached per text)."""
    if not text:
        return ""
    try:
        return _cached(text)
    except CSSTooLarge:
        return ""


@lru_cache(maxsize=256)
def _cached(text: str) -> str:
    return sanitize_css(text)


def _sanitize(text: str) -> str:
    rules = tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True)
    css = "\n".join(part for part in (_rule(node) for node in rules) if part)
    return css.replace("<", "\\3c ")


def _rule(node) -> str:
    if isinstance(node, ast.QualifiedRule):
        return _qualified_rule(node)
    if isinstance(node, ast.AtRule):
        return _at_rule(node)
    return ""  # ParseError, stray tokens


def _qualified_rule(node: ast.QualifiedRule) -> str:
    prelude = tinycss2.serialize(node.prelude).strip()
    if not prelude or not _tokens_safe(node.prelude):
        return ""
    body = _block(node.content or [], allow_nested=True)
    return f"{prelude}{{{body}}}" if body else ""


def _block(content, *, allow_nested: bool) -> str:
    """A style block: declarations, and (CSS nesting) nested rules."""
    parts = []
    for item in tinycss2.parse_blocks_contents(content, skip_comments=True, skip_whitespace=True):
        if isinstance(item, ast.Declaration):
            parts.append(_declaration(item))
        elif allow_nested and isinstance(item, ast.QualifiedRule | ast.AtRule):
            parts.append(_rule(item))
    return "".join(part for part in parts if part)


def _declaration(node: ast.Declaration) -> str:
    name = node.lower_name
    if name in _FORBIDDEN_PROPERTIES or not _tokens_safe(node.value):
        return ""
    value = tinycss2.serialize(node.value).strip()
    if not value:
        return ""
    important = "!important" if node.important else ""
    prop = node.name if name.startswith("--") else tinycss2.serialize_identifier(node.name)
    return f"{prop}:{value}{important};"


def _at_rule(node: ast.AtRule) -> str:
    keyword = node.lower_at_keyword
    if not _tokens_safe(node.prelude):
        return ""
    prelude = tinycss2.serialize(node.prelude).strip()
    head = f"@{keyword}{' ' + prelude if prelude else ''}"
    if node.content is None:
        # Only `@layer a, b;` statements; @import, @charset and @namespace are dropped here.
        return f"{head};" if keyword == "layer" and prelude else ""
    if keyword in _RULE_BLOCK_AT_RULES:
        rules = tinycss2.parse_rule_list(node.content, skip_comments=True, skip_whitespace=True)
        body = "".join(part for part in (_rule(rule) for rule in rules) if part)
    elif keyword in _KEYFRAMES_AT_RULES:
        frames = tinycss2.parse_rule_list(node.content, skip_comments=True, skip_whitespace=True)
        body = "".join(
            part
            for part in (_keyframe(frame) for frame in frames if isinstance(frame, ast.QualifiedRule))
            if part
        )
    elif keyword in _DECLARATION_AT_RULES:
        if keyword == "font-face" and not _tokens_safe(node.content):
            return ""  # a remote (or otherwise refused) src: the whole face goes
        body = _block(node.content, allow_nested=False)
    else:
        return ""
    return f"{head}{{{body}}}" if body else ""


def _keyframe(node: ast.QualifiedRule) -> str:
    selector = tinycss2.serialize(node.prelude).strip()
    if not selector or not _tokens_safe(node.prelude):
        return ""
    body = _block(node.content or [], allow_nested=False)
    return f"{selector}{{{body}}}" if body else ""


def _tokens_safe(tokens, *, in_url_function: bool = False) -> bool:
    """False if any token (at any depth) is a refused URL, expression() or script scheme."""
    for token in tokens or ():
        if isinstance(token, ast.URLToken):
            if not is_allowed_url(token.value):
                return False
        elif isinstance(token, ast.FunctionBlock):
            if token.lower_name == "expression" or _has_forbidden_word(token.lower_name):
                return False
            url_function = token.lower_name in _URL_STRING_FUNCTIONS
            if not _tokens_safe(token.arguments, in_url_function=url_function):
                return False
        elif isinstance(token, ast.StringToken):
            if in_url_function and not is_allowed_url(token.value):
                return False
            if _has_forbidden_word(token.value):
                return False
        elif isinstance(token, ast.IdentToken | ast.AtKeywordToken | ast.HashToken):
            if _has_forbidden_word(token.value):
                return False
        elif isinstance(token, ast.ParenthesesBlock | ast.SquareBracketsBlock | ast.CurlyBracketsBlock):
            if not _tokens_safe(token.content, in_url_function=in_url_function):
                return False
        elif isinstance(token, ast.ParseError):
            return False
    return True


def _has_forbidden_word(value: str) -> bool:
    folded = "".join(value.lower().split())
    return any(word in folded for word in _FORBIDDEN_WORDS)


def is_allowed_url(url: str) -> bool:
    """Only same-origin paths under this site's static or media URL (no scheme, host or `..`)."""
    value = url.strip()
    decoded = unquote(value)
    if "\\" in decoded or ".." in decoded or any(ord(char) < 0x20 for char in decoded):
        return False
    if value.startswith("//") or ":" in value.split("?", 1)[0].split("#", 1)[0]:
        return False
    prefixes = [
        prefix for prefix in (settings.STATIC_URL, settings.MEDIA_URL) if prefix and prefix.startswith("/")
    ]
    return any(value.startswith(prefix) for prefix in prefixes)
