"""The local twin: the function run from the very zips we publish, fed by an embedded stream.

``runtime``         the local Lambda runtime: awslambdaric workers over the Runtime API, pooled (``runtime.pool``)
``mapping``         the event source mapping: Lambda's stream semantics, batch by batch (``mapping.engine``)
``embedded_aws``    the AWS endpoint: stock moto's server in a process of its own on loopback, holding
                    the stream, the results table and queues (``endpoint`` is that process's program)
``moto_speedups``   moto's slow paths replaced, only in the endpoint's process, only with ``--fast-moto``
``moto_server``     a moto server process on loopback (``make local-aws``; the endpoint runs in one)
``replay``          the demo's ingest: generate, replay, check every record, summarise (``replay.run``)
``alias``           invoking the alias: the version picked per invocation by its weights, Lambda's metrics
``alarms``          CloudWatch's alarm evaluation, which the endpoint lacks (a canary's alarms)
``faults``          the soak's injected faults (throttling, killed workers, held writes): a proxy
``invoke``          one event through the runtime (``make invoke``)
``demo``, ``soak``  the command lines of ``make demo`` and ``make soak``
"""
