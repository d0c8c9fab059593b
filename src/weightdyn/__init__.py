"""weightdyn: gradient-descent training of small networks as a dynamical system.

Reproduces the study "On the weight dynamics of learning networks" (Sharafi, Martin,
Hallerberg; Phys. Rev. E 111, 054208, 2025; arXiv:2405.00743): analytic tangent operators of
full-batch gradient descent, Lyapunov analysis along every training trajectory, and prediction
of the final training loss from early stability indicators (docs/methods.md).

Importing the package is light (no NumPy, xarray or numba): the workflow imports it to plan
jobs. The public entry point for users' own analyses is :func:`load_results`.
"""

__version__ = "0.1.0"
__all__ = ["__version__", "load_results"]


def load_results(results_dir="results", variables=None, combinations=None):
    """The gathered results of all (activation, initialization) combinations as one xarray
    Dataset with dimensions ``activation`` and ``initialization``; see
    :func:`weightdyn.chunkio.load_results` for the options and the padding rules.

    Example::

        import weightdyn
        ds = weightdyn.load_results("results", variables=["final_loss", "outcome"])
        from weightdyn.outcomes import HIGH
        print((ds["outcome"] == HIGH).mean("network"))   # fraction of failed runs
    """
    from .chunkio import load_results as _load_results

    return _load_results(results_dir, variables=variables, combinations=combinations)
