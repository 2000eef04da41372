"""Rendering offline: a file in blocks with flat memory (file), folders in worker processes or on a Dask
cluster (folder), the gallery page of every preset and its figures.

May import: dreamfx.recipe, dreamfx.plugin and everything below.  Not live, validate or cli.
"""
