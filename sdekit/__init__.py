"""sdekit: stochastic differential equations in PyTorch."""
