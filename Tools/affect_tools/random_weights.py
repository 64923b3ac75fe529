"""Trained-looking random weights (SPEC 5): BatchNorm statistics, affine norms and PReLU slopes drawn from
non-trivial distributions so that folding or ordering bugs cannot hide behind identity values."""
import torch


@torch.no_grad()
def make_trained_looking(model, seed=0):
    g = torch.Generator().manual_seed(seed)
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
    model.eval()
    return model
