"""The book machinery: the chapter runner (jupytext -> papermill -> Jupyter Book), claims and claim sets,
and the browser check of the rendered HTML."""
