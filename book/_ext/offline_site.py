"""Sphinx extension: keep the built site self-contained and free of script errors.

jupyter-book always loads sphinx-thebe, which adds an inline script declaring
``const THEBE_JS_URL = "https://unpkg.com/..."`` plus ``sphinx-thebe.js``. The
book has no live-code buttons (``launch_buttons.thebe: false``), the URL points
off-site, and in our builds the inline script is emitted twice, which a browser
reports as "Identifier 'THEBE_JS_URL' has already been declared" on every page.
This extension drops those scripts from every page (and any exact duplicate script).

It also serves ``book/_static/ddrepro_tables.js`` with the site: tables of class
``ddrepro-sortable`` (the book's scorecard) get sortable headers and a filter box,
with no script from off-site; and ``book/_static/ddrepro.css`` (wide display
equations scroll inside the text column).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent.parent / "_static"


def _is_thebe(script: Any) -> bool:
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return str(script).endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body


def _script_key(script: Any) -> tuple[str, str]:
    return str(script), str(getattr(script, "attributes", {}).get("body", ""))


def drop_thebe_scripts(app, pagename, templatename, context, doctree) -> None:
    seen: set[tuple[str, str]] = set()
    kept = []
    for script in context.get("script_files", []):
        key = _script_key(script)
        if _is_thebe(script) or key in seen:
            continue
        seen.add(key)
        kept.append(script)
    context["script_files"] = kept


def add_static(app) -> None:
    if str(STATIC) not in map(str, app.config.html_static_path):
        app.config.html_static_path.append(str(STATIC))


def setup(app) -> dict[str, Any]:
    app.connect("builder-inited", add_static)
    app.add_js_file("ddrepro_tables.js")
    app.add_css_file("ddrepro.css")
    app.connect("html-page-context", drop_thebe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
