"""Building and checking the Lambda layers (model layer, dependencies layer)."""
