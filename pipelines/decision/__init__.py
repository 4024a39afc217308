"""Decision: the gate, a pure function over metrics."""
