"""pml: Precision Machine Learning (Michaud, Liu & Tegmark 2022) as a tested library.

The package exports nothing but ``__version__``: import the module you need
(``from pml import data, metrics``). No module has side effects at import.
"""

__version__ = "0.1.0"
