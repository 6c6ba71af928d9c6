"""The coupon-scoring pipeline: wiring (wiring.py), settings (options.py),
runner routing (runner.py), and the ``python -m pipeline`` entry point."""
