"""Feature stage: the Beam + TFT transform, and the raw-feature encoding that serving shares."""
