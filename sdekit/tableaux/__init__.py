"""Schemes as data: Butcher tableaux and stochastic Runge–Kutta tableaux."""
