"""The benchmark of the coupon-scoring pipeline (``bench/run.sh``; see ``bench/README.md``).

Not part of the product and not a test: it measures the pipeline against two references
(a plain kafka-python service and a kafka-python passthrough) on a local broker and the
stand-ins, and writes a report under ``bench/results/``.
"""
