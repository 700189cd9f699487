"""A small Sphinx extension that keeps the built book free of console errors when read offline.

sphinx-thebe and sphinx-togglebutton (loaded by Jupyter Book 1.x) each add an inline script twice
(once with filename None, once with ''), so every page raised "Identifier 'THEBE_JS_URL' has
already been declared". Scripts are de-duplicated by content before the page is written.
"""

from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = tuple(sorted(getattr(script, "attributes", {}).items()))
        key = (getattr(script, "filename", script) or "", attributes)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
