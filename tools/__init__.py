"""Developer tooling: training, packaging, local invoke, demo and benchmarks.

Run modules with the repository root and ``function/`` on ``sys.path`` (the Makefile
sets ``PYTHONPATH``).
"""
