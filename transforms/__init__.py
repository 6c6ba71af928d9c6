"""The composite transforms of the coupon-scoring pipeline, one per module."""
