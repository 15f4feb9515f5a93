"""Compare runs: `python -m recipes.compare PATH... [--metrics M,...] [--html OUT]`.

Modules: runs (find and read run and sweep directories), table (differing recipe keys + metrics),
plots (matplotlib PNGs), page (the static OUT/index.html), cli.
"""
