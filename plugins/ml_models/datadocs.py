"""Great Expectations Data Docs that render without internet: CDN references rewritten to local copies.

GE's page templates load Bootstrap, jQuery, bootstrap-table, Font Awesome and their friends from CDNs
and its logo from S3; behind a firewall the pages open unstyled and without icons. ``offline`` rewrites
each such ``<link>``/``<script>``/``<img>`` to the copies this plugin serves (``static/vendor``, from
the npm packages of the exact versions GE asks for; ``static/ge`` is GE's own ``render/view/static``
from the installed package). What has no local copy is dropped rather than left to hang the page: the
dark-mode stylesheet (the pages stay light) and Vega (only GE's profiling pages draw charts with it).
Plain ``<a href="https://...">`` links are navigation, not loads, and are kept.
"""

from __future__ import annotations

import re

# CDN URL (a prefix is enough) -> the local file under static/, or None to drop the tag.
LOCAL = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "vendor/bootstrap/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "vendor/bootstrap/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "vendor/jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "vendor/popper.js/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "vendor/bootstrap-table/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "vendor/bootstrap-table/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "vendor/bootstrap-table/bootstrap-table-filter-control.min.js"
    ),
    # GE asks for 1.19.0's filter-control CSS beside 1.19.1's JS; 1.19.1's CSS is the same rules.
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control": (
        "vendor/bootstrap-table/bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "vendor/bootstrap-datepicker/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "vendor/bootstrap-datepicker/bootstrap-datepicker.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "vendor/fontawesome/css/all.min.css",
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png": "ge/images/logo-long.png",
}

# A tag that loads something: <link ... href="http..."> <script ... src="http..."></script> <img ... src="http...">.
_LOADING_TAG = re.compile(
    r"<(?P<tag>link|script|img)\b(?P<attrs>[^>]*?)\b(?P<attr>href|src)=(?P<q>[\"'])(?P<url>https?://[^\"']*)(?P=q)"
    r"(?P<rest>[^>]*)>(?P<close>\s*</script>)?",
    re.IGNORECASE,
)


def local_copy(url: str) -> str | None:
    """The file under ``static/`` that replaces ``url``, or None if there is none."""
    return next((local for cdn, local in LOCAL.items() if url.startswith(cdn)), None)


def offline(html: str, static_url: str) -> str:
    """``html`` with every loading tag that points at the internet rewritten to ``static_url`` + the local copy,
    or removed when there is no local copy."""

    def swap(match: re.Match[str]) -> str:
        local = local_copy(match["url"])
        if local is None:
            return ""
        quote = match["q"]
        tag = f"<{match['tag']}{match['attrs']}{match['attr']}={quote}{static_url}/{local}{quote}{match['rest']}>"
        return tag + (match["close"] or "")

    return _LOADING_TAG.sub(swap, html)


def remote_loads(html: str) -> list[str]:
    """The URLs on the internet that ``html`` would still load (empty once it is offline)."""
    return [m["url"] for m in _LOADING_TAG.finditer(html)]
