"""weightdyn: gradient-descent training of small networks as a dynamical system.

Reproduces the study "On the weight dynamics of learning networks" (Sharafi, Martin,
Hallerberg; Phys. Rev. E 111, 054208, 2025): analytic tangent operators of full-batch
gradient descent, Lyapunov analysis along every trajectory, and prediction of the final
training loss from early stability indicators.
"""

__version__ = "0.1.0"
