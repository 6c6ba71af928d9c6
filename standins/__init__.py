"""Local stand-ins for the outside world: not the product."""
