"""The built book in print: `make pdf` (`python -m kernelfusion pdf`) prints every page with one
headless Chromium (driven by Playwright) and joins the pages into `book.pdf`, a bookmark per
page, with no LaTeX and no network. What of a page's tables and code did not reach the paper is
named in a warning (`cut_in_print`).

One browser for every page, rather than Chromium's `--print-to-pdf` once per page: the smoke
book's 15 pages printed in 9.7 s against 18.8 s, 14 browser starts fewer. The printed text is
read back with pdfium (`pdf_text`): 0.1 s for those pages against 1.5 s with pypdf's reader,
which still writes the joined file and its bookmarks (pdfium writes no outline).
"""

from __future__ import annotations

import re
import tempfile
import unicodedata
import warnings
from html.parser import HTMLParser
from pathlib import Path

from .book import PROJECT, BookError, toc_files

CHROMIUM = "/usr/bin/chromium"  # Debian's, as `make browser` installs it
# Flags for a headless Chromium on a machine with no network (see the browser tests);
# Playwright adds --headless itself.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
MARGIN = "1cm"  # Chromium's own default margin when it prints from its command line
# every plotly figure on the page has drawn its SVG (a figure that did not draw prints blank)
DRAWN = """() => [...document.querySelectorAll('.plotly-graph-div')]
    .every(figure => figure.querySelector('svg.main-svg'))"""


def make_pdf(out: Path | str = PROJECT / "book" / "_build", chromium: str = CHROMIUM) -> Path:
    """Print every page of the built book under `out` (in reading order) to PDF, after its
    scripts ran (plotly draws its figures), and join them into `out/book.pdf` with a bookmark
    per page. Whatever of a page's tables and code did not reach the paper is named in a
    warning."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
    from pypdf import PdfWriter

    out = Path(out).resolve()
    html = out / "_build" / "html"
    if not (html / "index.html").is_file():
        raise BookError(f"no built book in {out}: run `make book` (or kernelfusion book) first")
    if not Path(chromium).exists():
        raise BookError(f"Chromium not found at {chromium}: run `make browser`")
    writer, cut = PdfWriter(), {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=list(CHROMIUM_FLAGS))
        page = browser.new_context(offline=True).new_page()
        for number, name in enumerate(toc_files(), 1):
            source, pdf = html / f"{name}.html", Path(tmp) / f"{number:02d}.pdf"
            try:
                page.goto(source.as_uri(), wait_until="load")
                page.wait_for_function(DRAWN, timeout=60_000)
                page.evaluate("document.fonts.ready")
                page.pdf(path=pdf, margin=dict.fromkeys(("top", "right", "bottom", "left"), MARGIN))
            except PlaywrightError as error:
                raise BookError(f"Chromium could not print {source.name}: {error}") from None
            missing = cut_in_print(source, " ".join(pdf_text(pdf)))
            if missing:
                cut[name] = missing
            first = len(writer.pages)
            writer.append(pdf)
            writer.add_outline_item(title=title(source), page_number=first)
        browser.close()
        target = out / "book.pdf"
        writer.write(target)
    for name, missing in cut.items():
        warnings.warn(f"{name}: cut from the PDF: {'; '.join(missing[:5])}", stacklevel=2)
    return target


def pdf_text(pdf: Path) -> list[str]:
    """The text of each page of `pdf`, as pdfium reads it."""
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        # pdfium marks a hyphen that ends a line as "\x02"
        return [page.get_textpage().get_text_bounded().replace("\x02", "-") for page in document]
    finally:
        document.close()


class _PrintedParts(HTMLParser):
    """A built page's table cells, and its code lines, as text; not the code folded away in a
    `<details>` toggle (a `hide-input` cell), which neither screen nor paper shows unasked."""

    def __init__(self):
        super().__init__()
        self.cells: list[str] = []
        self.code: list[str] = []
        self._cell: list[str] | None = None
        self._pre: list[str] | None = None
        self._folded = 0  # depth of <details> around the current position

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th"):
            self._cell = []
        elif tag == "pre" and not self._folded:
            self._pre = []
        elif tag == "details":
            self._folded += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None
        elif tag == "pre" and self._pre is not None:
            self.code += "".join(self._pre).splitlines()
            self._pre = None
        elif tag == "details":
            self._folded -= 1

    def handle_data(self, data):
        for part in (self._cell, self._pre):
            if part is not None:
                part.append(data)


def cut_in_print(page: Path, printed: str, tail: int = 12) -> list[str]:
    """What of a built page's tables and code is not in its printed text: each table cell, and
    the last `tail` characters of each code line (where a line runs off the margin, its end is
    lost). Compared without spaces and line breaks, which wrapping moves; NFKC because the PDF's
    fonts set "fi" as one glyph."""

    def squeeze(text: str) -> str:
        return "".join(unicodedata.normalize("NFKC", text).split())

    parts = _PrintedParts()
    parts.feed(page.read_text())
    text = squeeze(printed)
    wanted = parts.cells + [line.rstrip()[-tail:] for line in parts.code if line.strip()]
    return [item for item in wanted if squeeze(item) not in text]


def title(page: Path) -> str:
    """The first heading of a built page, for the PDF's bookmarks."""
    match = re.search(r"<h1[^>]*>(.*?)</h1>", page.read_text(), re.S)
    text = re.sub(r"<[^>]+>", "", match.group(1)) if match else page.stem
    return " ".join(text.replace("#", "").split())
