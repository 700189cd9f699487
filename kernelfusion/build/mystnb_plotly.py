"""A myst-nb mime renderer that drops plotly's JSON mime type from the book, silently.

`figures.show` emits each figure twice: as `text/html` (what the book shows, drawn by the local
plotly.js) and as plotly's own mime type (what JupyterLab draws). myst-nb would warn about the
second one on every figure; this plugin tells it that nothing is to be rendered for it.
"""

from __future__ import annotations

PLOTLY_MIME = "application/vnd.plotly.v1+json"


class PlotlyJsonRenderer:
    """Registered under the `myst_nb.mime_renderers` entry point in pyproject.toml."""

    mime_priority_overrides = (("*", PLOTLY_MIME, None),)

    @staticmethod
    def handle_mime(renderer, data, inline):
        return [] if data.mime_type == PLOTLY_MIME else None
