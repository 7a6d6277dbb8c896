__version__ = "0.1.0"

from randsmooth.core import ABSTAIN, Certificate, Prediction, Smooth, certify, predict
from randsmooth.fast import accelerate
from randsmooth.sequential import certify_sequential
from randsmooth.stats import (binom_pvalue, certified_radius, lower_confidence_bound, max_certifiable_radius,
                              radius_lecuyer, radius_li, samples_for_radius)


# imported on first use: they pull in torchvision and the models
_LAZY = {"load_model": "randsmooth.train", "Denoised": "randsmooth.denoise", "DnCNN": "randsmooth.denoise",
         "load_denoiser": "randsmooth.denoise"}


def __getattr__(name):
    "load_model (randsmooth.train) and Denoised, DnCNN, load_denoiser (randsmooth.denoise), imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'randsmooth' has no attribute {name!r}")
