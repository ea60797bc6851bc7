"""Experiments a data team runs on its model: cost by batch and memory size, benchmarks.

``cost``        the batch-size / memory / architecture cost experiment (``make cost-experiment``)
``bench``       warm and cold benchmarks of the handler against a bare predict / load (``make bench``)
``skops_eval``  the measurement behind not adopting skops.io (docs/model-integrity.md)

They run the function through the local twin (:mod:`localtwin`) and price it with :mod:`pricing`.
"""
