"""Replay an ingest through the local twin of Lambda and its stream trigger (``make demo``).

One run (:func:`localtwin.replay.run.run_replay`) writes an ingest to an embedded stream,
runs the function from the built zips behind the local event source mapping until every
record is handled, then accounts for every record and exports the results table to CSV;
the steps and the accounting are described in :mod:`localtwin.replay.run`.

``ingest``   what is written: review texts, malformed records, DynamoDB updates and deletes,
             each tagged with what it must end as; reading the tags back from the events
``meter``    the time moto's server spends on each operation
``tally``    the function's log lines summed: EMF counts, quarantined records, predict time
``results``  the results table scanned and exported to CSV; every record checked
``run``      :func:`~localtwin.replay.run.run_replay`: options, one run end to end, its result
``summary``  the run's cost at Lambda's prices and the summary a person reads

This file holds no imports: import the module you need.
"""
