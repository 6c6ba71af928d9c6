"""Jobs on the past, built from the live pipeline's transforms (transforms.coupon_scoring):

- ``python -m pipeline.replay``: a what-if. A past time range scored again with another
  scorer, threshold or top K, compared with what the live service published (report.py).
- ``python -m pipeline.replay.redrive``: dead letters of retryable reasons re-driven: their
  original records read again from their source offsets, scored, and the predictions
  published to the live topic once per focus event.

Both are bounded Beam jobs (job.py) on the service's runners; they commit no offsets.
"""
