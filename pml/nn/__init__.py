"""Neural networks: builders, training (Adam), BFGS and low-curvature steps, Hessian spectra,
Levenberg-Marquardt, boosting, multi-stage fitting, exact readouts, the multiplication gadget, linear regions."""
