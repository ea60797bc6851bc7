"""Batch-size cost experiments: measured, projected, priced, plotted.

``python -m experiments.cost`` (``make cost-experiment [TARGET=aws]``) and
``notebooks/batch_size_cost.ipynb`` run :func:`experiments.cost.experiment.run_experiment`:

=================  ==========================================================
``pricing``        dated, cited price tables (Lambda, SnapStart, provisioned concurrency, free tier, SageMaker)
``arithmetic``     billed duration, cost per invocation / ingest / month, break-even
``workload``       synthetic Kinesis events of each batch size (6 MB cap)
``measurement``    one row per invocation (CSV), medians and spreads
``measure_local``  cold starts and warm invocations on the local Lambda runtime
``quota``          a real CPU quota (cgroup CFS bandwidth) for the projection check
``project``        the CPU-share model: duration at each memory size
``aws``            the same experiment against the deployed function (read from its ``REPORT`` lines)
``recommend``      cost tables, cheapest configuration, break-even, the classic study
``options``        serving options side by side (on demand, SnapStart, provisioned, SageMaker), the recommendation
``options_report`` their tables and ``options.png`` (break-even curves)
``report``         CSVs and ``report.md`` with its prose; ``plots``: the PNGs; ``tables``: the tables
``experiment``     the whole run: measure, analyse, write
``cli``            the command line
=================  ==========================================================
"""
