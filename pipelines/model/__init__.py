"""Model: training, the serving-signature contract and scoring through it."""
