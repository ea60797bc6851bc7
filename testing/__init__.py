"""What tests, the fuzzer and the local twin build events with, and judge results by.

``events``  Lambda's event shapes (Kinesis, DynamoDB Streams, API Gateway, function URL) as
            ``sam local generate-event`` writes them; ``python -m testing.events`` writes samples
``fuzz``    the seeded hostile-event generator and its oracle (``python -m testing.fuzz``)

Nothing here is shipped: the function zip holds ``function/`` only.
"""
