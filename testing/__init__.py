"""What tests, the fuzzer and the local twin build events with, and judge results by.

``events``       Lambda's event shapes (Kinesis, DynamoDB Streams, API Gateway, function URL) as
                 ``sam local generate-event`` writes them; ``python -m testing.events`` writes samples
``accounting``   the oracle of stream accounting: from what each record is, what the response and
                 the sinks must show (independent of ``function/``)
``doubles``      the test doubles of sinks, quarantines and models
``fuzz``         the seeded hostile-event generator and its log checks (``python -m testing.fuzz``)
``fault_proxy``  an HTTP proxy on loopback that fails, times out or drops the Nth call of an AWS operation
``http_body``    reading a request body in an ``http.server`` handler

Nothing here is shipped: the function zip holds ``function/`` only.
"""
