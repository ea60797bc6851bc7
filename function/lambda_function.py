"""AWS Lambda entry point: ``lambda_function.lambda_handler``.

An adapter only. The model is loaded and verified once per execution environment,
during init (a tampered or incompatible model layer stops the function from starting);
each invocation is handed to :meth:`inference.app.App.handle`.
"""

from inference.app import App

app = App.from_env()


def lambda_handler(event, context):
    return app.handle(event, context)
