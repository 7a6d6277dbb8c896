__version__ = "0.1.0"

from randsmooth.core import ABSTAIN, Certificate, Prediction, Smooth, certify, predict
from randsmooth.fast import accelerate
from randsmooth.sequential import certify_sequential
from randsmooth.stats import (binom_pvalue, certified_radius, lower_confidence_bound, max_certifiable_radius,
                              radius_lecuyer, radius_li, samples_for_radius)


def __getattr__(name):
    "load_model comes from randsmooth.train, imported on first use (it pulls in torchvision and the models)."
    if name == "load_model":
        from randsmooth.train import load_model
        return load_model
    raise AttributeError(f"module 'randsmooth' has no attribute {name!r}")
