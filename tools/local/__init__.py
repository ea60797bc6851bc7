"""A local twin of Lambda: its runtime (``lambda_runtime``, ``runtime_api``) and what drives it."""
