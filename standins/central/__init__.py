"""The central stand-in: customer context and coupon catalogue (SQLite behind HTTP)."""
