"""The scorer stand-in: a logistic-regression coupon model behind a predict endpoint."""
