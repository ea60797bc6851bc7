"""Rollouts of a model: the shadow report (:mod:`rollout.compare`, ``make compare``).

A folder of its own because both the local twin (``make demo STRATEGY=shadow`` prints the
report) and the command line read it: it imports the function's comparison
(:mod:`inference.shadow`) and the settings (:mod:`release.settings`), and ``localtwin`` imports
it, so it sits between them (``experiments`` imports ``localtwin``, so it could not live there).
"""
