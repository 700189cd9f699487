"""What the chapters show and say (`report`): computed words, tables read from the metrics
files, the glue."""

from kernelfusion import evaluate, report, stats


def test_no_chapter_types_a_result_in_its_prose():
    """Decimals and percentages in a chapter's prose must come from glue, never be typed."""
    import re

    import nbformat

    from kernelfusion.build import book

    for name in book.chapters():
        notebook = nbformat.read(book.PROJECT / f"{name}.ipynb", 4)
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                text = re.sub(r"\{glue:[a-z]*\}`[^`]*`", "", cell.source)
                text = re.sub(r"`[^`]*`", "", text)  # code: config keys, file names
                text = re.sub(r"\b(95|80|5)%", "", text)  # the method's levels, not results
                assert not re.search(r"\b\d+\.\d+\b|\d+\s?%", text), (name, cell.source)


def test_results_chapter_reads_its_numbers_from_the_metrics_files(seeded_metrics):
    """The results chapter's table changes when (and only when) a metrics file changes."""
    metrics = seeded_metrics({"random": [0.6, 0.8]})
    first = report.results_table(stats.mean_ci(evaluate.long_metrics(metrics)))
    metrics[1]["models"]["random"]["linear probe"]["f1"] = 0.9
    second = report.results_table(stats.mean_ci(evaluate.long_metrics(metrics)))
    # t_0.975 with 1 df is 12.706; half the range of two values is their sd / sqrt(2)
    assert first.loc["random CNN", "probe F1"] == "0.700\u00a0± 1.271"  # by label
    assert second.loc["random CNN", "probe F1"] == "0.750\u00a0± 1.906"


def test_report_paste_is_myst_nbs_glue():
    """`report.paste` writes what myst_nb.glue(..., display=False) writes, without importing
    myst_nb in the chapter's kernel."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import Markdown
    from IPython.utils.capture import capture_output
    from myst_nb import glue

    InteractiveShell.instance()
    values, markdown = {"n": 3, "share": 0.25, "who": "gen_f"}, {"words": "*not* better"}
    with capture_output() as ours:
        report.paste(values, markdown)
    with capture_output() as theirs:
        for key, value in values.items():
            glue(key, value, display=False)
        for key, value in markdown.items():
            glue(key, Markdown(value), display=False)
    assert [(o.data, o.metadata) for o in ours.outputs] == [
        (o.data, o.metadata) for o in theirs.outputs
    ]
    assert len(ours.outputs) == 4 and ours.outputs[3].metadata["scrapbook"]["name"] == "words"


def test_chapter_05s_filter_change_is_keyed_by_id_and_glued_per_layer():
    import pandas as pd

    change = pd.DataFrame({"conv1": [0.0, 0.456], "conv2": [0.0, 1.234]}, index=["cat", "gen_f"])
    assert report.change_glue(change) == {"f_change1": 0.46, "f_change2": 1.23}
