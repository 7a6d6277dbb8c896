"""Mutants of the training methods' losses (issue 27) and of denoised smoothing (issue 28): each breaks one thing a loss must do, and each must make its
notebook's tests fail. Not part of the suite (about two minutes): run `python tests/mutants.py` after changing a loss;
it prints 'caught' or 'MISSED' per mutant and exits with the number missed."""
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
MUTANTS = [  # (notebook, what breaks, the line as it is, the line broken)
    ("06b_consistency", "stability: cross-entropy on the noisy copy",
     "return F.cross_entropy(logits, y) + step.config.lbd", "return F.cross_entropy(noisy, y) + step.config.lbd"),
    ("06b_consistency", "stability: the weight ignored", "step.config.lbd * stab.mean()", "2.0 * stab.mean()"),
    ("06b_consistency", "consistency: no entropy term", "c.eta * entropy).mean()", "0 * entropy).mean()"),
    ("06b_consistency", "consistency: KL with the wrong sign", "(log_mean.repeat(m, 1) - F.log_softmax(logits, 1))",
     "(F.log_softmax(logits, 1) - log_mean.repeat(m, 1))"),
    ("06c_smoothadv", "smoothadv: the attack descends", "2 * epsilon / steps * grad", "-2 * epsilon / steps * grad"),
    ("06c_smoothadv", "smoothadv: no projection on the ball", ".renorm(2, 0, epsilon)", ""),
    ("06c_smoothadv", "smoothadv: trains at x, not at x'", "logits, ys = model(adv.repeat_interleave(m, 0) + noise)",
     "logits, ys = model(x.repeat_interleave(m, 0) + noise + 0 * adv.repeat_interleave(m, 0))"),
    ("06d_macer", "macer: no hinge (every image counts)", "hinge = gap.isfinite() & (gap.abs() <= c.margin)",
     "hinge = gap.isfinite()"),
    ("06d_macer", "macer: sigma/2 left out", "(c.margin - gap).sum() * sigma / 2 / B", "(c.margin - gap).sum() / B"),
    ("06d_macer", "macer: deferred one epoch short", "step.epoch <= c.lr_step", "step.epoch < c.lr_step"),
    ("06e_smoothmix", "smoothmix: the path descends", "adv = (adv + step_size * grad", "adv = (adv - step_size * grad"),
    ("06e_smoothmix", "smoothmix: target without the uniform", "lam[:, None] / g.shape[1]", "0 * lam[:, None]"),
    ("06e_smoothmix", "smoothmix: mixing weight ignored", "c.eta * warm * (right * kl).mean()",
     "1.0 * warm * (right * kl).mean()"),
    # denoised smoothing (issue 28)
    ("06f_denoise", "denoise: DnCNN returns the noise it predicts", "return x - self.noise(x)", "return self.noise(x)"),
    ("06f_denoise", "denoise: Denoised skips the denoiser", "def forward(self, x): return self.classifier(self.denoiser(x))",
     "def forward(self, x): return self.classifier(x)"),
    ("06f_denoise", "denoise: MSE against the noisy image", "return F.mse_loss(denoiser(noisy), x)",
     "return F.mse_loss(denoiser(noisy), noisy)"),
    ("06f_denoise", "denoise: stab's target is f's label for the noisy image", "label = classifier(x).argmax(1)",
     "label = classifier(noisy).argmax(1)"),
    ("06f_denoise", "denoise: the classifier left in training mode", "classifier.requires_grad_(False).eval()",
     "classifier.requires_grad_(False)"),
    ("06f_denoise", "denoise: a denoiser for other images is loaded", "if shape is not None and tuple(shape) != made_for:",
     "if False:"),
    ("07_experiments", "experiments: a log continued with another denoiser",
     "if (was := meta.get(\"denoiser_sha256\")) != (den or {}).get(\"denoiser_sha256\"):", "if False:"),
]

if __name__ == "__main__":
    missed, path = 0, ROOT / "nbs" / "zz_mutant.ipynb"
    for nb, what, old, new in MUTANTS:
        d = json.loads((ROOT / "nbs" / f"{nb}.ipynb").read_text())
        hits = [c for c in d["cells"] if old in "".join(c["source"])]
        assert len(hits) == 1, f"{nb}: the line to break is not there once: {old!r}"
        hits[0]["source"] = "".join(hits[0]["source"]).replace(old, new).splitlines(keepends=True)
        path.write_text(json.dumps(d))
        try:
            r = subprocess.run([str(pathlib.Path(sys.executable).with_name("nbdev-test")), str(path)],
                               capture_output=True, text=True, cwd=ROOT)
        finally: path.unlink()
        missed += r.returncode == 0
        print(f"{'caught' if r.returncode else 'MISSED'}: {what}", flush=True)
    sys.exit(missed)
