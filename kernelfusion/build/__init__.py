"""The tool that builds the book, compute then render: it first makes every pipeline run the
chapters read (`compute`), then executes the chapters (papermill, each in a Jupyter kernel
started ahead), which read cached stages and draw; it renders the executed chapters with
Jupyter Book (and its two Sphinx plug-ins) and prints the PDF.

It imports the science package (`kernelfusion`); no module of the science package imports it.
"""
