"""Execute the chapters with papermill and build them into a Jupyter Book (1.x).

The book is built from a staged copy of the sources: `_config.yml`, `_toc.yml`, the hand-written
pages in `book/`, the executed notebooks at the same relative paths as in the repository, and
`_static/plotly.min.js` so plotly figures draw with no network. The source notebooks are never
executed in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import config as config_module
from ..figures import plotly_js_path
from ..pipeline import worker_threads
from ..progress import STATUS_ENV
from ..store import check_writable, package_versions
from . import compute
from .jupyter_kernels import Kernels

PROJECT = Path(__file__).resolve().parents[2]


# `make book` from empty caches (the runs folder and numba's) on the project's 2-core CPU: the
# slowest of the builds measured beside the yardstick (benchmarks/README.md), printed before the
# first chapter.
COLD_SECONDS = {"smoke": 84, "default": 1016}


def expected_words(preset: str) -> str | None:
    """What a build of `preset` from empty caches is expected to take, if it was measured."""
    seconds = COLD_SECONDS.get(preset)
    if not seconds:
        return None
    took = f"{seconds / 60:.0f} minutes" if seconds >= 90 else f"{seconds} s"
    return (
        f"{preset}: about {took} from empty caches on 2 CPU cores (measured; a machine half "
        "as fast takes twice that; stages already cached are reused)"
    )


class BookError(RuntimeError):
    """A chapter or the book build failed; the message names where and why."""


@dataclass
class BookResult:
    index_html: Path
    chapter_seconds: dict[str, float]
    build_seconds: float
    chapter_peak_mib: dict[str, float] = field(default_factory=dict)
    # the compute phase (`compute`): its seconds and the peak memory (MiB) of its workers
    runs: dict[str, float] = field(default_factory=dict)


class PeakMemory:
    """The peak resident memory (MiB) of this process's descendants (a chapter's kernel and any
    worker it starts), sampled every `interval` seconds on a thread while in the `with`; not of
    the processes `ignore` names when asked (idle kernels: the next chapter's, started ahead)."""

    def __init__(self, interval: float = 0.2, ignore: Callable[[], set[int]] = set):
        self.interval, self.peak, self.ignore = interval, 0.0, ignore
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(self.interval):
            total, ignored = 0, self.ignore()
            for child in me.children(recursive=True):
                if child.pid in ignored:
                    continue
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # ended between listing and reading
                    pass
            self.peak = max(self.peak, total / 2**20)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def toc_files(project: Path = PROJECT) -> list[str]:
    """Every file named in `_toc.yml`, in reading order (without suffix)."""
    toc = yaml.safe_load((project / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def chapters(project: Path = PROJECT) -> list[str]:
    """The notebook chapters named in `_toc.yml`, e.g. `notebooks/00_setup`."""
    return [f for f in toc_files(project) if f.startswith("notebooks/")]


def _select(names: list[str], only: str | None) -> list[str]:
    if only is None:
        return names
    prefixes = [p.strip() for p in only.split(",") if p.strip()]
    unmatched = [p for p in prefixes if not any(Path(n).name.startswith(p) for n in names)]
    if unmatched or not prefixes:
        valid = ", ".join(Path(n).name for n in names)
        named = ", ".join(repr(p) for p in unmatched) or repr(only)
        raise BookError(f"--only {named} matches no chapter; chapters are: {valid}")
    return [n for n in names if any(Path(n).name.startswith(p) for p in prefixes)]


def stage_sources(source: Path, project: Path = PROJECT) -> None:
    """Copy the book's configuration, hand-written pages, plotly.js and the print style into
    `source`."""
    source.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(project / name, source / name)
    pages = source / "book"
    pages.mkdir(exist_ok=True)
    for page in (project / "book").iterdir():
        if page.is_file():
            shutil.copy2(page, pages / page.name)
    (source / "_static").mkdir(exist_ok=True)
    shutil.copy2(plotly_js_path(), source / "_static" / "plotly.min.js")
    shutil.copy2(Path(__file__).with_name("print.css"), source / "_static" / "print.css")
    for name in chapters(project):  # chapters not executed (yet) appear without outputs
        target = source / f"{name}.ipynb"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project / f"{name}.ipynb", target)


def execute(
    preset: str,
    overrides: dict[str, Any],
    source: Path,
    *,
    only: str | None = None,
    project: Path = PROJECT,
    log=print,
    live: bool | None = None,
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Compute, then render: first every pipeline run chapters 07-08 read (`compute`), then
    each chapter with papermill into `source`, reading cached stages; stop at the first failing
    one. Returns each chapter's seconds, the peak memory (MiB) of its kernel and workers, and
    the compute phase's seconds and peak ({} when there was none). With `live` (default: when
    the terminal shows it), the running phase's line says, as it goes, its time so far, the
    runs done and the stage or loop at work."""
    cfg = config_module.load(preset, overrides)  # fail before starting any work
    check_writable()  # the runs folder, before the first chapter rather than half-way through
    names = _select(chapters(project), only)
    if only is None and expected_words(preset):
        log(expected_words(preset))
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would litter the book's pages
    os.environ["KERNELFUSION_BOOK"] = "1"  # warnings printed without file paths
    live = sys.stdout.isatty() if live is None else live
    os.environ[STATUS_ENV] = str(source / "live-status")  # each process says what it does
    keys = {name: chapter_key(project / f"{name}.ipynb", preset, overrides) for name in names}
    pending = [n for n in names if executed_key(source / f"{n}.ipynb") != keys[n]]
    kernel_threads = os.environ.get("OMP_NUM_THREADS")
    # every stage at the workers' thread count (a stage's key holds it): the chapters read the
    # runs made in the compute phase, and chapter 08's arms reuse seed 0's data, source CNNs,
    # zoo and reference CycleGAN
    os.environ["OMP_NUM_THREADS"] = str(worker_threads(cfg.analysis.workers))
    kernels, runs = None, {}
    try:
        numbers = tuple(Path(n).name[:2] for n in pending)
        if compute.needed(cfg, numbers):
            ours = tuple(n for n in numbers if n in compute.CHAPTERS)
            runs = _compute(cfg, ours, source, live, log)
        kernels = Kernels(len(pending), project / "notebooks", source / "kernel-stderr.log")
        for number, name in enumerate(names, 1):
            output = source / f"{name}.ipynb"
            output.parent.mkdir(parents=True, exist_ok=True)
            line = f"[{number}/{len(names)}] {Path(name).name} ..."
            log(line, end=" ", flush=True)
            key = keys[name]
            if name not in pending:  # the same chapter, config and code: its pages stand
                seconds[Path(name).name], peaks[Path(name).name] = 0.0, 0.0
                log("unchanged")
                continue
            parameters = {"preset": preset, "overrides": overrides}
            took, peak = _run_chapter(
                project, name, source, key, parameters, (line, live, log), kernels
            )
            seconds[Path(name).name], peaks[Path(name).name] = took, peak
            log(f"\r{line} {took:.1f} s{CLEAR}" if live else f"{took:.1f} s")
    finally:  # not needed (every chapter unchanged), or a chapter failed: not left running
        if kernels is not None:
            kernels.close()
        os.environ.pop("OMP_NUM_THREADS")
        os.environ.update({"OMP_NUM_THREADS": kernel_threads} if kernel_threads else {})
    return seconds, peaks, runs


def _compute(
    cfg: config_module.Config, chapters: tuple[str, ...], source: Path, live: bool, log
) -> dict[str, float]:
    """The compute phase (`compute.run`) on a line of its own, live like a chapter's; each
    failed run on a line after it. Its seconds and the peak memory (MiB) of its workers."""
    started = time.time()
    line = f"runs for chapters {', '.join(chapters)} ..."
    log(line, end=" ", flush=True)
    status_file = _fresh_status()
    runs_log = source / "runs.log"
    ticker = _LiveLine(line, started, status_file, log) if live else None
    with PeakMemory() as memory, ticker or contextlib.nullcontext():
        failed = compute.run(cfg, chapters, status_file=str(status_file), log=runs_log)
    took = round(time.time() - started, 2)
    log(f"\r{line} {took:.1f} s{CLEAR}" if live else f"{took:.1f} s")
    for failure in failed:  # the chapter that reads it makes it again, and says why it fails
        log(f"  a run failed (its chapter tries it again; log: {runs_log}): {failure}")
    return {"seconds": took, "peak MiB": round(memory.peak, 1)}


def _fresh_status() -> Path:
    """The status file, with what an earlier phase said removed."""
    status_file = Path(os.environ[STATUS_ENV])
    for stale in [status_file, *status_file.parent.glob(f"{status_file.name}.*")]:
        stale.unlink(missing_ok=True)
    return status_file


def _run_chapter(
    project: Path,
    name: str,
    source: Path,
    key: str,
    parameters: dict,
    terminal: tuple[str, bool, Callable],
    kernels: Kernels,
) -> tuple[float, float]:
    """Execute chapter `name` of `project` into `source` (through a partial file: an
    interrupted run keeps no half-executed page) in the next of `kernels`; its seconds and the
    peak memory (MiB) of its kernel and workers. `terminal`: its line, whether it is rewritten
    as it goes (live), and the function that writes it."""
    # from here: the first chapter's seconds hold papermill's import (2-3 s while the book's
    # other processes start), which the reader waits for before its line moves
    started = time.time()
    line, live, log = terminal
    from papermill import execute_notebook
    from papermill.exceptions import PapermillExecutionError

    output = source / f"{name}.ipynb"
    partial = output.with_name(f".partial.{output.name}")
    status_file = _fresh_status()
    ticker = _LiveLine(line, started, status_file, log) if live else None
    kernel = kernels.take()
    try:
        with PeakMemory(ignore=kernels.idle) as memory, ticker or contextlib.nullcontext():
            execute_notebook(
                str(project / f"{name}.ipynb"),
                str(partial),
                parameters=parameters,
                kernel_name="python3",
                cwd=str(project / "notebooks"),
                progress_bar=False,
                log_output=False,
                km=kernel,
            )
    except PapermillExecutionError as error:
        kernels.release(kernel)
        log(f"\r{line} failed" + CLEAR if live else "failed")
        if error.ename == "StorageError":  # the runs folder: its own line says the fix
            raise BookError(f"chapter {Path(name).name}: {error.evalue}") from None
        raise BookError(
            f"chapter {Path(name).name} failed in cell [{error.exec_count}] "
            f"({error.ename}: {error.evalue}).\nCell source:\n{error.source}\n"
            f"The executed notebook, with the traceback, is {partial}"
        ) from None
    kernels.release(kernel)
    tidy_executed(partial, project, key)
    os.replace(partial, output)
    return round(time.time() - started, 2), round(memory.peak, 1)


CLEAR = "\033[K"  # erase the rest of the terminal line


def read_status(path: Path) -> dict[str, str]:
    """What the status files at `path` say now: {"": the current work, part: ...}."""
    found = {}
    for file in [path, *path.parent.glob(f"{path.name}.*")]:
        if not file.name.startswith(".") and file.is_file():
            try:
                found[file.name[len(path.name) + 1 :]] = file.read_text().strip()
            except OSError:
                continue
    return found


def live_status(line: str, started: float, status_file: Path, now: float | None = None) -> str:
    """A running phase's line: its time so far, then what its status files say (the runs
    done, the stage or loop at work), e.g. `[9/10] 08_... 312 s · runs: 4 of 21 done ·
    CycleGAN conv1 600/1000`."""
    said = read_status(status_file)
    parts = [f"{line} {(now or time.time()) - started:.0f} s"]
    parts += [said[key] for key in (compute.DONE, "") if said.get(key)]
    return " · ".join(parts)


class _LiveLine:
    """Rewrites a chapter's terminal line every second, from a thread, while it runs."""

    def __init__(self, line: str, started: float, status_file: Path, log):
        self.args, self.log = (line, started, status_file), log
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            width = shutil.get_terminal_size().columns - 1  # one line: never wrap
            self.log("\r" + live_status(*self.args)[:width] + CLEAR, end="", flush=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def chapter_key(notebook: Path, preset: str, overrides: dict[str, Any]) -> str:
    """What an executed chapter depends on: its source, the preset and overrides, the
    package's code and the versions of the libraries it records. The stages are functions of
    these, so a chapter whose key is unchanged would print the same pages again."""
    import hashlib

    digest = hashlib.sha256(notebook.read_bytes())
    digest.update(json.dumps([preset, overrides, package_versions()], sort_keys=True).encode())
    for path in sorted((PROJECT / "kernelfusion").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def executed_key(path: Path) -> str | None:
    """The chapter key recorded in an executed chapter, if there is one."""
    try:
        return json.loads(path.read_text())["metadata"]["kernelfusion"]["chapter key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def tidy_executed(path: Path, project: Path = PROJECT, key: str | None = None) -> None:
    """Make an executed chapter fit for readers: only papermill's injected parameters are shown
    (the notebook's own `parameters` cell, the defaults it replaced, gets Jupyter Book's
    `remove-cell` tag), and papermill's record of the input and output paths is made relative
    to the project, so no page carries the build machine's folders."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    if key is not None:
        notebook.metadata["kernelfusion"] = {"chapter key": key}
    record = notebook.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if record.get(key):
            record[key] = f"notebooks/{Path(record[key]).name.removeprefix('.partial.')}"
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(notebook, path)


def drop_unexecuted(source: Path, project: Path = PROJECT) -> list[str]:
    """Take the chapters that were never executed in `source` (a first build with `--only`)
    out of its `_toc.yml`: their glued numbers do not exist, so the build would fail on them;
    so are the chapters that paste values from them. In the hand-written pages, a value pasted
    from a chapter not in the build becomes a note saying so. Returns their names."""
    import nbformat

    notebooks = {
        name: nbformat.read(source / f"{name}.ipynb", as_version=4) for name in chapters(project)
    }
    missing = [name for name, nb in notebooks.items() if "papermill" not in nb.metadata]
    names = {Path(name).name for name in missing}
    for name, notebook in notebooks.items():
        text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
        if name not in missing and _pasted_from(text) & names:
            missing.append(name)
    if missing:
        toc = yaml.safe_load((source / "_toc.yml").read_text())

        def keep(entries):
            return [e for e in entries or [] if e.get("file") not in missing]

        for part in toc.get("parts", []):
            part["chapters"] = keep(part.get("chapters"))
        if "chapters" in toc:
            toc["chapters"] = keep(toc["chapters"])
        (source / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
        _unpaste(source, {Path(name).name for name in missing})
    return [Path(name).name for name in missing]


# a value pasted from another chapter (`{glue:text}`path::key:fmt``) and a pasted output
# (the `{glue}` directive with `:doc:`), as the first page and "The original, re-run" use them
_PASTED_ROLE = re.compile(r"\{glue(?::\w*)?\}`(?P<doc>[^`]*?)::[^`]*`")
_PASTED_BLOCK = re.compile(r"```\{glue\}[^\n]*\n:doc: (?P<doc>[^\n]*)\n```\n?")


def _pasted_from(text: str) -> set[str]:
    """The chapters (notebook names) whose glued values `text` pastes."""
    found = [m.group("doc") for m in _PASTED_ROLE.finditer(text)]
    found += [m.group("doc") for m in _PASTED_BLOCK.finditer(text)]
    return {Path(doc).stem for doc in found}


def _unpaste(source: Path, missing: set[str]) -> None:
    """In the staged hand-written pages (copied afresh each build), replace every value pasted
    from a chapter not in this build (`missing`) by a note saying so."""

    def note(match: re.Match) -> str:
        name = Path(match.group("doc")).stem
        return f"*(chapter {name[:2]} is not in this build)*" if name in missing else match[0]

    def drop(match: re.Match) -> str:
        return "" if Path(match.group("doc")).stem in missing else match[0]

    for page in source.rglob("*.md"):
        if "_build" not in page.parts:
            text = page.read_text()
            page.write_text(_PASTED_ROLE.sub(note, _PASTED_BLOCK.sub(drop, text)))


def build(source: Path, out: Path) -> Path:
    """Build the staged book with warnings as errors; return the path of `index.html`."""
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [
        str(jupyter_book if jupyter_book.exists() else "jupyter-book"),
        "build",
        str(source),
        "--path-output",
        str(out),
        "-W",
        "-n",
        "--keep-going",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BookError(
            "jupyter-book build failed (warnings are errors):\n"
            + (result.stdout[-6000:] + result.stderr[-6000:])
        )
    index = out / "_build" / "html" / "index.html"
    if not index.is_file():
        raise BookError(f"jupyter-book build finished but {index} is missing")
    return index


def make_book(
    preset: str = "default",
    overrides: dict[str, Any] | None = None,
    out: Path | str = PROJECT / "book" / "_build",
    *,
    only: str | None = None,
    project: Path = PROJECT,
    log=print,
    live: bool | None = None,
) -> BookResult:
    """Execute the chapters (all, or `only` one) and build the book under `out`; `live`: see
    `execute`."""
    out = Path(out).resolve()
    overrides = dict(overrides or {})
    source = out / "source"
    stage_sources(source, project)
    chapter_seconds, peaks, runs = execute(
        preset, overrides, source, only=only, project=project, log=log, live=live
    )
    skipped = drop_unexecuted(source, project)
    if skipped:
        log(
            "not in this build (never executed here; run them without --only): "
            + ", ".join(skipped)
        )
    log("building the book ...", end=" ", flush=True)
    started = time.time()
    index = build(source, out)
    build_seconds = round(time.time() - started, 2)
    log(f"{build_seconds:.1f} s")
    timings = {
        "preset": preset,
        "runs": runs,
        "chapters": chapter_seconds,
        "peak MiB": peaks,
        "build": build_seconds,
    }
    (out / "timings.json").write_text(json.dumps(timings, indent=1))
    return BookResult(index, chapter_seconds, build_seconds, peaks, runs)
