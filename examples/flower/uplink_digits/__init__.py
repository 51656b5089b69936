"""Uplink + Flower example: federated training of a small numpy MLP on the UCI digits."""
