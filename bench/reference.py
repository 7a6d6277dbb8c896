"""The paper's Monte Carlo loop, as in the public reference code (locuslab/smoothing, code/core.py), kept here only
to benchmark randsmooth against it on the same weights, inputs and device.

Changes from the original, each marked `# changed:`: the device is the input's (the original hard-codes 'cuda'), and
`noise=` can replace `torch.randn_like` with a given noise source so that both implementations can be fed the very
same draws. Everything else (one input at a time, `x.repeat`, `.cpu().numpy()` per batch, counting in a Python loop,
`torch.no_grad`) is the original's.
"""
from math import ceil

import numpy as np
import torch
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint


class PaperSmooth:
    ABSTAIN = -1

    def __init__(self, base_classifier, num_classes, sigma):
        self.base_classifier, self.num_classes, self.sigma = base_classifier, num_classes, sigma

    def certify(self, x, n0, n, alpha, batch_size, noise=None):
        "(class, radius) or (ABSTAIN, 0.0); also returns both count vectors. noise(phase, start, k) -> eps [k, *shape]."
        self.base_classifier.eval()
        counts_selection = self._sample_noise(x, n0, batch_size, noise and (lambda s, k: noise(0, s, k)))
        cAHat = counts_selection.argmax().item()
        counts_estimation = self._sample_noise(x, n, batch_size, noise and (lambda s, k: noise(1, s, k)))
        nA = counts_estimation[cAHat].item()
        pABar = proportion_confint(nA, n, alpha=2 * alpha, method="beta")[0]
        if pABar < 0.5:
            return (PaperSmooth.ABSTAIN, 0.0), counts_selection, counts_estimation
        return (cAHat, self.sigma * norm.ppf(pABar)), counts_selection, counts_estimation

    def _sample_noise(self, x, num, batch_size, noise=None):
        with torch.no_grad():
            counts = np.zeros(self.num_classes, dtype=int)
            done = 0                                                   # changed: to index a given noise source
            for _ in range(ceil(num / batch_size)):
                this_batch_size = min(batch_size, num)
                num -= this_batch_size
                batch = x.repeat((this_batch_size, 1, 1, 1))
                if noise is None:
                    noise_ = torch.randn_like(batch, device=x.device) * self.sigma  # changed: x's device, not 'cuda'
                else:                                                  # changed: the same draws as randsmooth's
                    noise_ = noise(done, this_batch_size).to(x.device) * self.sigma
                done += this_batch_size
                predictions = self.base_classifier(batch + noise_).argmax(1)
                counts += self._count_arr(predictions.cpu().numpy(), self.num_classes)
            return counts

    def _count_arr(self, arr, length):
        counts = np.zeros(length, dtype=int)
        for idx in arr:
            counts[idx] += 1
        return counts
