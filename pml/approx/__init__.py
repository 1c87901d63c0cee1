"""Approximation methods that are not neural networks: simplex interpolation, splines, piecewise
polynomials, classical baselines (Chebyshev, RBF, polynomial least squares) and the loss decomposition."""
