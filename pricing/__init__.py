"""What Lambda (and the endpoints it is compared with) cost: dated prices and billing arithmetic.

``prices``   the price tables, each with its source and date (Lambda, free tier, SageMaker)
``billing``  billed duration, cost per invocation / ingest / month, break-even

Depends on nothing else in the project; the local twin and the cost experiments price with it.
"""
