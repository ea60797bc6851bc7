"""The reference data set and models: what ``make train`` fits and the tests train.

``dataset``        the Rotten Tomatoes review snippets, from a pinned wheel, sha256-checked
``train``          the reference text classifier, written as a model folder with its manifest
``tabular_model``  a small all-numeric model for tests of the tabular input contract

Model folders are written with :mod:`layers.model_layer`'s manifest builder.
"""
