"""The simulator: a discrete-event replay of work on a portfolio, placing every job with the placement engine."""
