"""The tool that builds the book: it executes the chapters (papermill, each in a Jupyter kernel
started ahead), runs the pipeline runs chapters 07-08 read in the background meanwhile, renders
the executed chapters with Jupyter Book (and its two Sphinx plug-ins) and prints the PDF.

It imports the science package (`kernelfusion`); no module of the science package imports it.
"""
