"""A local event source mapping (ESM) for Kinesis and DynamoDB streams, with Lambda's semantics.

The semantics, and the decisions taken where AWS leaves room, are listed in
:mod:`localtwin.mapping.engine`.

``judge``        how Lambda reads one invocation's outcome (``batchItemFailures``) for a batch
``streams``      the stream adapters: Kinesis and DynamoDB Streams read with boto3, records
                 shaped as Lambda delivers them
``destination``  the on-failure destination (SQS, SNS or S3) that records given up on go to
``stats``        the counters of one run and the log of every invocation
``engine``       :class:`~localtwin.mapping.engine.EventSourceMapping`: shards, lanes, batching,
                 invoking, retries, bisection, checkpoints

This file holds no imports: import the module you need.
"""
