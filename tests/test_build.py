"""The chapters run for real at the smoke preset, the book builds, and a real browser reads it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from kernelfusion import config, pipeline, progress
from kernelfusion.__main__ import STOPPED
from kernelfusion.build import book, compute, pdf

CHROMIUM = shutil.which("chromium") or pdf.CHROMIUM
BROWSER_ARGS = list(pdf.CHROMIUM_FLAGS)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    runs = out / "runs"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERNELFUSION_RUNS", str(runs))
        # live: each running chapter's line rewritten as a terminal would show it
        result = book.make_book("smoke", {}, out, log=_record, live=True)
    return result


LIVE: list[str] = []  # what the shared smoke build printed


def _record(text: str = "", **print_options) -> None:
    LIVE.append(text)


@pytest.mark.slow
def test_a_running_chapter_shows_its_progress_live(built):
    """`make book` in a terminal: first the runs chapters 07-08 read, then each chapter, one
    phase at a time; while one runs, its one line says its time so far and what is at work
    (the runs done of how many, a worker's stage or loop count)."""
    assert LIVE[0] == book.expected_words("smoke")  # what it will take, before anything runs
    expected = f"smoke: about {book.COLD_SECONDS['smoke']} s from empty caches on 2 CPU cores"
    assert LIVE[0].startswith(expected)
    assert LIVE[1].startswith("runs for chapters 07, 08 ...")  # the compute phase comes first
    first_chapter = next(i for i, line in enumerate(LIVE) if line.startswith("[1/"))
    runs = [line for line in LIVE[:first_chapter] if line.startswith("\rruns for")]
    assert any(re.search(r" s · runs: \d+ of \d+ done · \w.* \d+/\d+", line) for line in runs)
    # the chapters, on cached stages, take seconds: a running one's line says its time so far
    assert any(re.fullmatch(r"\r\[\d+/11\] \w+ \.\.\. \d+ s( · .*)?\x1b\[K", line) for line in LIVE)


@pytest.mark.slow
def test_the_book_makes_each_stage_once_at_the_workers_thread_count(built):
    """The compute phase's workers and the chapters' kernels all make stages at the workers'
    thread count, which every stage key holds: so what the compute phase made is what the
    chapters read, and chapter 08's arms read seed 0's data, source CNNs, zoo and reference
    CycleGAN. No run of the compute phase failed, and its workers printed nothing to the
    terminal."""
    import json

    out = built.index_html.parents[2]
    keys = [
        json.loads(m.read_text())["key"] for m in (out / "runs").glob("stages/*/*/manifest.json")
    ]
    assert {k["threads"] for k in keys if "threads" in k} == {str(pipeline.worker_threads(2))}
    runs_log = (out / "source" / "runs.log").read_text()
    assert not [line for line in LIVE if "failed" in line], runs_log[-3000:]
    assert built.runs["seconds"] > 0 and built.runs["peak MiB"] > 0


@pytest.mark.slow
def test_the_compute_phase_makes_the_runs_the_chapters_read(built, monkeypatch):
    """The compute phase's plan is the chapters' own: the smoke book's runs folder holds a run
    for each run planned (chapter 08's confirmation by the chapter's own choice), and none
    that a chapter made besides them."""
    out = built.index_html.parents[2]
    monkeypatch.setenv("KERNELFUSION_RUNS", str(out / "runs"))
    cfg = config.load("smoke", {})
    planned = {job.cfg.run_name for job in compute.plan(cfg) + compute.confirmation(cfg)}
    made = {folder.name for folder in (out / "runs").glob("smoke-*")}
    assert made == planned


def _kind(job: compute.Job) -> str:
    """What a job of the compute phase is for: a confirmation seed's inputs (with its rivals),
    one of chapter 08's arms (the probe alone), or chapter 07's run or replication."""
    if job.rivals:
        return "inputs"
    return "arms" if job.cfg.analysis.views == "probe" else "chapter 07"


def test_the_confirmation_seeds_inputs_are_made_before_the_arms_and_the_longest_runs_first():
    """The compute phase leaves only the confirmation runs for the end: the data, source CNNs,
    zoo and rivals of every confirmation seed that chapter 07 does not run come before chapter
    08's arms, and the confirmation runs of those seeds (which train every CycleGAN) first."""
    from kernelfusion import ablation

    cfg = config.load("default", {})
    jobs = compute.plan(cfg)
    order = ["chapter 07", "inputs", "arms"]
    kinds = [_kind(job) for job in jobs]
    assert kinds == sorted(kinds, key=order.index) and set(kinds) == set(order)
    fresh = set(ablation.confirmation_seeds(cfg)) - set(pipeline.seeds(cfg))
    assert {job.cfg.seed for job in jobs if job.rivals} == fresh and len(fresh) == 3
    seeds = compute.longest_first(ablation.confirmation_seeds(cfg), cfg)
    assert set(seeds[: len(fresh)]) == fresh


def test_a_build_without_chapter_08_computes_none_of_its_runs():
    """`--only` without chapter 08 (the folder of photographs' test builds 01, 05 and 07): no
    arm, no confirmation seed's inputs; without 07, none of its seeds or its replication."""
    cfg = config.load("default", {})
    kinds = {
        chapters: {_kind(job) for job in compute.plan(cfg, chapters)}
        for chapters in (("07",), ("08",), ("07", "08"))
    }
    assert kinds == {
        ("07",): {"chapter 07"},
        ("08",): {"inputs", "arms"},
        ("07", "08"): {"chapter 07", "inputs", "arms"},
    }
    assert compute.plan(cfg) == compute.plan(cfg, ("07", "08"))
    assert len(compute.plan(cfg, ("07",))) == len(pipeline.seeds(cfg)) + 1  # and the replication


def _book_in_its_own_session(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """`make book` for chapter 07 alone, whose compute phase has minutes of work (a long
    CycleGAN), in a process group of its own as a terminal starts it; returns the process
    once the workers are making stages, and the runs folder."""
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "kernelfusion", "book", "--preset", "smoke", "--only", "07"]
    command += ["--set", "gan.steps=100000", "--out", str(tmp_path / "book")]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"KERNELFUSION_RUNS": str(runs)},
        start_new_session=True,
    )
    deadline = time.time() + 120
    while not _past_the_data(runs) and time.time() < deadline:  # the workers well at work
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    assert _past_the_data(runs), "no worker was past the data within 120 s"
    return process, runs


def _past_the_data(runs: Path) -> bool:
    """A worker is making a stage after the data (both workers are then past their start)."""
    return any(tmp.parent.name != "data" for tmp in runs.glob("stages/*/.*.tmp"))


def _all_gone(group: int, timeout: float) -> str:
    """'' once no process of `group` is left (within `timeout` seconds), else what is left
    (then killed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return ""
        time.sleep(0.2)
    left = subprocess.run(
        ["ps", "-o", "pid,ppid,stat,wchan:24,etime,args", "-g", str(group)],
        capture_output=True,
        text=True,
    ).stdout
    os.killpg(group, signal.SIGKILL)
    return left


def _nothing_half_made(runs: Path) -> None:
    """No stage's temporary folder is left, and no lock is held (the next build makes those
    stages)."""
    import fcntl

    assert not list(runs.glob("stages/*/.*.tmp"))
    for lock in runs.glob("checkpoints/.*.lock"):
        with lock.open("a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if one is still held


def test_ctrl_c_in_the_compute_phase_stops_every_worker_and_keeps_no_half_made_stage(tmp_path):
    """Ctrl-C (SIGINT to the terminal's whole process group) while the workers make the runs:
    the book stops them, each unwinds the stage it is making, and the book says what is kept
    and how to go on; no process is left."""
    process, runs = _book_in_its_own_session(tmp_path)
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(90)
    except subprocess.TimeoutExpired:
        pytest.fail("the book did not stop within 90 s of Ctrl-C:\n" + _all_gone(process.pid, 0))
    assert process.returncode == 130
    assert STOPPED in process.stderr.read()
    assert not (left := _all_gone(process.pid, 10)), f"processes outlived the book:\n{left}"
    _nothing_half_made(runs)


def test_the_compute_phase_stops_when_the_book_process_is_killed(tmp_path):
    """A book killed outright (its terminal closed, SIGKILL) cannot stop its workers: they
    notice their book is gone and stop themselves, leaving nothing half-written."""
    process, runs = _book_in_its_own_session(tmp_path)
    process.kill()
    process.wait()
    # each worker looks for its book every second
    assert not (left := _all_gone(process.pid, 30)), f"the workers outlived their book:\n{left}"
    _nothing_half_made(runs)


def test_a_running_chapter_line_reads_its_status_files(tmp_path, monkeypatch):
    status_file = tmp_path / "live-status"
    monkeypatch.setenv(progress.STATUS_ENV, str(status_file))
    for _ in progress.bar(range(3), desc="CycleGAN conv1", progress=False):  # shown or not
        pass
    assert status_file.read_text() == "CycleGAN conv1 3/3"
    progress.status("runs: 2 of 5 done", "runs")
    line = book.live_status("[9/10] 08 ...", 100.0, status_file, now=112.4)
    assert line == "[9/10] 08 ... 12 s · runs: 2 of 5 done · CycleGAN conv1 3/3"
    script = "from kernelfusion import progress\nb = progress.bar(total=4, desc='zoo')\nb.update(4)"
    subprocess.run([sys.executable, "-c", script], check=True, env=os.environ.copy())
    assert status_file.read_text() == "zoo 4/4"  # a worker process says it in the same file


@pytest.mark.slow
def test_every_toc_page_is_built(built):
    html = built.index_html.parent
    for name in book.toc_files():
        page = html / f"{name}.html"
        assert page.is_file(), f"{page} missing"
    assert set(built.chapter_seconds) == {Path(c).name for c in book.chapters()}
    assert (html / "_static" / "plotly.min.js").is_file()
    # plotly.js (4.8 MB) is loaded by the pages that draw a figure, and by no other
    loads = {
        name: ("Plotly.newPlot" in text, text.count("plotly.min.js"))
        for name in book.toc_files()
        for text in [(html / f"{name}.html").read_text()]
    }
    assert {draws for draws, _ in loads.values()} == {True, False}
    assert all(count == int(draws) for draws, count in loads.values()), loads


@pytest.mark.slow
def test_chapters_are_executed_not_sources(built):
    import nbformat

    source = built.index_html.parent.parent.parent / "source"
    for name in book.chapters():
        notebook = nbformat.read(source / f"{name}.ipynb", as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert any(c.outputs for c in code), f"{name} has no outputs"
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in code)
    sources = [nbformat.read(Path(book.PROJECT) / f"{n}.ipynb", 4) for n in book.chapters()]
    assert not any(c.get("outputs") for nb in sources for c in nb.cells if c.cell_type == "code")


def test_failing_chapter_names_chapter_cell_and_error(tmp_path, runs_dir):
    import nbformat

    project = tmp_path / "project"
    shutil.copytree(book.PROJECT / "book", project / "book", ignore=shutil.ignore_patterns("_*"))
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(book.PROJECT / name, project / name)
    (project / "notebooks").mkdir()
    notebook = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "default"\noverrides = {}')
    params.metadata["tags"] = ["parameters"]
    notebook.cells = [params, nbformat.v4.new_code_cell("1 / 0")]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, project / "notebooks" / "00_setup.ipynb")
    (project / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/00_setup\n"
    )
    with pytest.raises(
        book.BookError,
        match=r"chapter 00_setup failed in cell \[3\] "
        r"\(ZeroDivisionError: division by zero\)",
    ):
        book.make_book("smoke", {}, tmp_path / "out", project=project, log=lambda *a, **k: None)


def test_the_next_chapters_kernel_starts_ahead_with_the_package_imported_and_none_outlives(
    tmp_path,
):
    """While a chapter runs, the next chapter's kernel is started and imports the package as it
    starts (no cell, no history: the chapter's first cell is still [1]); a released kernel
    exits by itself, and `close` ends the rest, a kernel a stopped build never used included."""
    import psutil
    from jupyter_client import BlockingKernelClient

    from kernelfusion.build.jupyter_kernels import Kernels

    kernels = Kernels(3, tmp_path)
    first = kernels.take()
    (spare,) = kernels.idle()  # started for the second chapter before the first one runs
    assert spare != first.provisioner.pid
    client = BlockingKernelClient(connection_file=first.connection_file)
    client.load_connection_file()
    client.start_channels()
    outputs = []
    reply = client.execute_interactive(
        "import sys; print(all(m in sys.modules for m in ('kernelfusion.pipeline', 'torch')))",
        output_hook=lambda m: outputs.append(m["content"].get("text", "")),
        timeout=120,
    )
    client.stop_channels()
    assert reply["content"]["status"] == "ok" and reply["content"]["execution_count"] == 1
    assert "".join(outputs).split() == ["True"]
    pids = {first.provisioner.pid, spare}
    kernels.release(first)
    second = kernels.take()  # the one started ahead; the third starts now
    assert second.provisioner.pid == spare and len(kernels.idle()) == 2
    pids |= kernels.idle()  # the first, exiting, and the third
    kernels.close()  # the build stops here: the second is running, the third never ran
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], 10)
    assert alive == [] and kernels.idle() == set()


def test_bad_parameters_fail_before_any_kernel_starts(tmp_path):
    from kernelfusion.config import ConfigError

    with pytest.raises(ConfigError, match="unknown override 'epochs'"):
        book.make_book("smoke", {"epochs": 0}, tmp_path, log=lambda *a, **k: None)
    with pytest.raises(book.BookError, match="matches no chapter"):
        book.make_book("smoke", {}, tmp_path, only="99", log=lambda *a, **k: None)
    with pytest.raises(book.BookError, match="'98' matches no chapter"):
        book.make_book("smoke", {}, tmp_path, only="01,98", log=lambda *a, **k: None)


def _browser(playwright):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: run `make browser` (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)


def _open(browser, path: Path, context=None):
    """A page opened offline (in a new context, or in `context`), collecting console errors and
    any non-file request."""
    page = (context or browser.new_context(offline=True)).new_page()
    page.problems, page.remote = [], []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("request", lambda r: page.remote.append(r.url) if not r.url.startswith("file:") else 0)
    page.goto(path.as_uri())
    return page


def _hover(page, point) -> None:
    """Move the mouse onto a plotly point (plotly's drag layer takes the pointer events)."""
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


@pytest.mark.slow
def test_every_chapter_page_renders_without_console_errors_offline(built):
    from playwright.sync_api import sync_playwright

    html = built.index_html.parent
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        # one context, as a reader's browser: its cache keeps plotly.js compiled from page to
        # page (a context per page: 17.4 s, each page with a figure parsing it again)
        context = browser.new_context(offline=True)
        for name in book.toc_files():
            page = _open(browser, html / f"{name}.html", context)
            page.wait_for_load_state("load")
            assert page.locator("h1").count() >= 1, name
            assert page.problems == [] and page.remote == [], (name, page.problems, page.remote)
        browser.close()


@pytest.mark.slow
def test_umap_explorer_switches_models_and_shows_image_on_hover(built):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = _browser(playwright)
        page = _open(browser, built.index_html.parent / "notebooks" / "06_clusters.html")
        page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=15000)
        plot = page.locator(".js-plotly-plot").first
        first_title = plot.locator(".gtitle").text_content()
        _hover(page, plot.locator(".scatterlayer .trace .point").first)
        thumbnail = plot.locator("img.kf-thumbnail")
        thumbnail.wait_for(state="visible", timeout=5000)
        assert thumbnail.get_attribute("src").startswith("data:image/png;base64,")
        plot.locator(".updatemenu-header-group").click()
        plot.locator(".updatemenu-dropdown-button").nth(3).click()
        page.wait_for_timeout(300)
        assert plot.locator(".gtitle").text_content() != first_title
        assert page.problems == [] and page.remote == []
        browser.close()


@pytest.mark.slow
def test_plotly_figure_draws_and_is_interactive_offline(built):
    """Headless Chromium, network off: the figure's SVG has its bars, hover works, no errors."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: run `make browser` (apt-get install chromium)")
    page_path = built.index_html.parent / "notebooks" / "00_setup.html"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        context = browser.new_context(offline=True)
        page = context.new_page()
        problems, remote = [], []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: remote.append(r.url) if not r.url.startswith("file:") else 0)
        page.goto(page_path.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=15000)
        bars = page.locator(".js-plotly-plot .trace.bars .point")
        assert bars.count() == 12  # 3 presets x 4 sets
        bar = bars.nth(5)
        bar.scroll_into_view_if_needed()
        # plotly's drag layer takes the pointer: move the mouse over the bar, near the axis
        box, area = bar.bounding_box(), page.locator(".js-plotly-plot .nsewdrag").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, area["y"] + area["height"] - 4)
        page.wait_for_selector(".js-plotly-plot .hoverlayer .hovertext", timeout=5000)
        assert "images=" in page.locator(".hoverlayer .hovertext").first.text_content()
        browser.close()
    assert problems == []
    assert remote == []


@pytest.mark.slow
def test_one_parameters_block_per_chapter_and_no_path_of_the_build_machine(built):
    """Only papermill's injected parameters are shown, and no page (nor a downloadable source)
    carries the folders of the machine that built it."""
    html = built.index_html.parent
    # the build folder (the runs folder is inside it), the checkout, the kernels' cell files
    build_folders = [str(html.parent.parent), str(book.PROJECT), "/tmp/ipykernel"]
    for name in book.chapters():
        page = (html / f"{name}.html").read_text()
        assert page.count("tag_injected-parameters") == 1, name
        assert "tag_parameters" not in page, name
    for path in html.rglob("*"):
        if path.suffix in (".html", ".ipynb", ".txt", ".md"):
            text = path.read_text(errors="ignore")
            assert not [f for f in build_folders if f in text], path
    setup = (html / "notebooks" / "00_setup.html").read_text()
    assert "commit" in setup and "built" in setup


def test_what_print_cuts_is_found(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<p>text</p><table><tr><th>model</th><th>probe F1</th></tr>"
        "<tr><td>cat CNN</td><td>0.51</td></tr></table>"
        "<pre>short = 1\nkf.plots.show(kf.result_plots.differences_plot(shown, title=x))</pre>"
        "<details><summary>Show code</summary><pre>import kernelfusion as kf</pre></details>"
    )  # code folded away (a hide-input cell) is not printed, and not looked for
    whole = "model probe F1 cat CNN 0.51 short = 1 kf.plots.show(kf.result_plots.differ"
    assert pdf.cut_in_print(page, whole + "\nences_plot(shown, title=x))") == []  # wrapped
    assert pdf.cut_in_print(page, "model cat CNN short = 1 kf.plots.show(kf.re") == [
        "probe F1",
        "0.51",
        "n, title=x))",
    ]


def test_pdf_of_a_book_not_built_is_one_line_naming_the_fix(tmp_path, capsys):
    from kernelfusion import __main__ as cli

    assert cli.main(["pdf", "--out", str(tmp_path)]) == 2
    said = capsys.readouterr().err.strip()
    assert (
        said == f"error: no built book in {tmp_path}: run `make book` (or kernelfusion book) first"
    )


@pytest.mark.slow
def test_pdf_has_every_chapter_title_and_no_blank_page(built):
    """`make pdf`: one PDF of the whole book, a bookmark and the title of every page in it,
    nothing cut at the margin (tables and code), and no page without text (a figure that
    failed to draw leaves a blank page)."""
    import unicodedata

    from pypdf import PdfReader

    html = built.index_html.parent
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        printed = pdf.make_pdf(html.parent.parent, CHROMIUM)
    cut = [str(w.message) for w in caught if "cut from the PDF" in str(w.message)]
    assert cut == [], cut  # every table cell and the end of every code line is on paper
    reader, pages = PdfReader(printed), pdf.pdf_text(printed)
    assert len(pages) == len(reader.pages) > len(book.toc_files())
    # NFKC: the PDF's fonts set "fi" as one ligature glyph
    text = " ".join(unicodedata.normalize("NFKC", " ".join(pages)).split())
    titles = [pdf.title(html / f"{name}.html") for name in book.toc_files()]
    for title in titles:
        assert title in text, title
    assert [item.title for item in reader.outline] == titles
    # a page holding only a figure's image is not blank; a figure that did not draw leaves
    # neither text nor an image
    blank = [i for i, words in enumerate(pages) if not words.strip() and not reader.pages[i].images]
    assert blank == [], f"blank pages: {blank}"


@pytest.mark.slow
def test_rebuild_with_nothing_changed_reexecutes_no_chapter(built, monkeypatch):
    out = built.index_html.parent.parent.parent
    monkeypatch.setenv("KERNELFUSION_RUNS", str(out / "runs"))
    again = book.make_book("smoke", {}, out, log=lambda *a, **k: None)
    assert set(again.chapter_seconds.values()) == {0.0}
    assert again.index_html.is_file()
    first = book.chapters()[0]
    key = book.executed_key(out / "source" / f"{first}.ipynb")
    assert key == book.chapter_key(book.PROJECT / f"{first}.ipynb", "smoke", {})
    assert key != book.chapter_key(book.PROJECT / f"{first}.ipynb", "smoke", {"seed": 1})


def _glued(notebook: Path) -> dict[str, str]:
    """The values an executed chapter glued, as the text the book shows."""
    import json

    values = {}
    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                data = output["data"]
                text = data.get("application/papermill.record/text/plain") or data.get(
                    "application/papermill.record/text/markdown", ""
                )
                values[name] = "".join(text)
    return values


@pytest.mark.slow
def test_glued_numbers_are_the_metrics_files_numbers(built):
    """What chapters 6, 7 and 9 say in their prose is what the metrics files hold."""
    import json

    import numpy as np

    from kernelfusion import config

    out = built.index_html.parent.parent.parent
    source = out / "source" / "notebooks"
    metrics = {
        seed: json.loads(
            (
                out
                / "runs"
                / config.load("smoke", {"seed": seed}).run_name
                / "metrics"
                / "metrics.json"
            ).read_text()
        )
        for seed in pipeline.seeds(config.load("smoke"))
    }
    first = config.load("smoke").seed
    f1 = [m["models"]["gen_f"]["linear probe"]["f1"] for m in metrics.values()]
    chapter6 = _glued(source / "06_clusters.ipynb")
    assert float(chapter6["gen_probe"]) == round(f1[0], 2)
    assert int(chapter6["n_evaluated"]) == metrics[first]["evaluated images"]
    chapter7 = _glued(source / "07_results.ipynb")
    assert int(chapter7["n_seeds"]) == len(metrics)
    assert int(chapter7["n_labelled"]) == metrics[first]["labelled images"]
    closing = _glued(source / "09_what_we_learned.ipynb")
    assert float(closing["f1_mean"]) == pytest.approx(np.mean(f1))
    page = (built.index_html.parent / "notebooks" / "09_what_we_learned.html").read_text()
    assert f"{np.mean(f1):.3f}" in page


@pytest.mark.slow
def test_how_this_copy_was_built_lists_the_stages_the_smoke_runs_made(built):
    """The last page shows, from the manifests, every stage the book's runs read (not a line of
    the build's own timings between the chapters' prose)."""
    import json

    source = built.index_html.parent.parent.parent / "source" / "notebooks"
    page = json.loads((source / "10_how_this_copy_was_built.ipynb").read_text())
    shown = "".join(
        "".join(o.get("data", {}).get("text/plain", ""))
        for cell in page["cells"]
        for o in cell.get("outputs", [])
    )
    for stage in ("data", "sources", "zoo", "cyclegan-conv1", "models", "metrics (per model)"):
        assert stage in shown, shown[-2000:]
    for chapter in ("01_datasets", "02_source_cnns", "04_cyclegan"):
        text = (source / f"{chapter}.ipynb").read_text()
        assert "reused" not in text and " s on " not in text
