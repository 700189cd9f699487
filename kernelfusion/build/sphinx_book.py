"""A small Sphinx extension for the built book's scripts: no console errors when read offline,
and plotly.js only where it draws.

sphinx-thebe and sphinx-togglebutton (loaded by Jupyter Book 1.x) each add an inline script twice
(once with filename None, once with ''), so every page raised "Identifier 'THEBE_JS_URL' has
already been declared". Scripts are de-duplicated by content before the page is written.

plotly.js (4.8 MB, `_config.yml` adds it to every page) took 1.5 s of each page's loading on the
project's CPU before the page showed (in a headless Chromium; a page without it 0.1 s), and 10
of the book's 15 pages draw no plotly figure: they are written without it.
"""

from __future__ import annotations

PLOTLY_JS = "plotly.min.js"
DRAWS = "Plotly.newPlot"  # in the script of every figure `figures.show` writes


def _page_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    draws = DRAWS in context.get("body", "")
    for script in context.get("script_files", []):
        filename = getattr(script, "filename", script) or ""
        if filename.split("?")[0].endswith(PLOTLY_JS) and not draws:
            continue
        attributes = tuple(sorted(getattr(script, "attributes", {}).items()))
        key = (filename, attributes)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _page_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
