"""Trained-looking random weights (SPEC 5): BatchNorm statistics, affine norms and PReLU slopes drawn from
non-trivial distributions so that folding or ordering bugs cannot hide behind identity values.

Deep convolutional nets with random weights *and* random BatchNorm statistics blow their activations up
stage after stage (EfficientNet-B2 reaches |x| ~ 4e4, where float32 itself differs from float64 by 2 %),
which no float32 port could match to 1e-4. A trained network's BatchNorm statistics match the data it
sees; `calibration_input` reproduces that: the running statistics are measured on real forward passes,
then perturbed (mean ± 0.1σ, variance × 0.8–1.25) so folding stays non-trivial.
"""
import torch


@torch.no_grad()
def make_trained_looking(model, seed=0, calibration_input=None):
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = m.num_features
            if m.weight is not None:
                m.weight.copy_(torch.rand(n, generator=g) * 1.5 + 0.25)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.3)
        elif isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm)):
            if getattr(m, "weight", None) is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 1.2 + 0.4)
            if getattr(m, "bias", None) is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        elif isinstance(m, torch.nn.PReLU):
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.4 + 0.05)
    if calibration_input is not None and bns:
        # Freeze each BN to the statistics of its actual input, one layer at a time (front to back), so
        # every layer sees the distribution the calibrated layers before it produce.
        model.eval()
        for bn in bns:
            captured = {}

            def hook(mod, inp, out, captured=captured):
                x = inp[0]
                dims = [0] + list(range(2, x.dim()))
                captured["mean"] = x.mean(dim=dims)
                captured["var"] = x.var(dim=dims, unbiased=False)

            h = bn.register_forward_hook(hook)
            model(calibration_input)
            h.remove()
            if "mean" not in captured:
                continue
            n = bn.num_features
            std = captured["var"].clamp_min(1e-6).sqrt()
            bn.running_mean.copy_(captured["mean"] + 0.1 * std * torch.randn(n, generator=g))
            bn.running_var.copy_(captured["var"].clamp_min(1e-6) * (0.8 + 0.45 * torch.rand(n, generator=g)))
    model.eval()
    return model
