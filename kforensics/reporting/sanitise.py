"""HTML of notebook outputs reduced to an allow-list (nh3, the Ammonia sanitiser) for the page.

Defence in depth: the notebooks escape log text at source and the page's Content-Security-Policy
runs only scripts bearing its nonce; this drops whatever markup an output should never have had.
"""

from __future__ import annotations

import re

import nh3

# What a report shows: tables, headings, prose, code, lists, links, images (data: URLs only).
TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd",
        "del", "details", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
        "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small",
        "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
        "thead", "tr", "u", "ul", "var",
    }
)  # fmt: skip
ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start"},
}
# Removed with everything inside them, not just their tags (their text is code, not prose).
DROPPED_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "template"})


# The only pages a report links to: ATT&CK techniques (kforensics.investigate.story.attack_url).
ATTACK_PAGE = re.compile(r"https://attack\.mitre\.org/techniques/T\d{4}/(?:\d{3}/)?")


def _keep_url(tag: str, attribute: str, value: str) -> str | None:
    # Links go to this page's anchors or to ATT&CK's technique pages; images are inlined data.
    if tag == "a" and attribute == "href":
        return value if value.startswith("#") or ATTACK_PAGE.fullmatch(value) else None
    if tag == "img" and attribute == "src":
        return value if value.startswith("data:image/") else None
    if attribute == "id" and value.startswith("kf-"):
        return None  # the page's own elements (charts) are found by these ids
    return value


def clean_html(markup: str) -> str:
    """Return markup with only the allowed tags and attributes (no script, handler, frame)."""
    return nh3.clean(
        markup,
        tags=set(TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        attribute_filter=_keep_url,
        url_schemes={"https", "data"},
        strip_comments=True,
    )


def markdown_html(text: str) -> str:
    """Return Markdown rendered to HTML (as nbconvert renders it), then cleaned."""
    from nbconvert.filters import markdown2html

    return clean_html(markdown2html(text))
