#!/usr/bin/env python3
"""Reference fixtures for `affect fit`'s training numerics (Tests/Fixtures/fit).

For each loss of the seed's heads, a small MLP (nn.Sequential(Linear, ReLU, Linear), or one Linear for the
logistic-regression gate) is initialised by PyTorch, then trained for 50 full-batch steps of
torch.optim.Adam (PyTorch's defaults; some cases with weight decay) on random data. Each case file holds the
data, the initial and the final weights and the loss before every step; AffectTrainingTests replays the 50
steps from the same initial weights and compares.

    /work/main/Tools/.venv/bin/python Tools/make_fit_reference.py Tests/Fixtures/fit

Losses (as `affect fit` defines them):
  ce    nn.CrossEntropyLoss(weight=class_weights), 8 classes (EXPR)
  ccc   1 - CCC of tanh(z) per column (population moments), mean over columns (VA)
  bce   nn.BCEWithLogitsLoss, 12 outputs (AU)
  mse   nn.MSELoss, 6 outputs (EMI)
  gate  nn.BCEWithLogitsLoss on one Linear layer (logistic regression)
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

STEPS = 50


def ccc_loss(z, y):
    o = torch.tanh(z)
    mx, my = o.mean(0), y.mean(0)
    vx, vy = ((o - mx) ** 2).mean(0), ((y - my) ** 2).mean(0)
    cxy = ((o - mx) * (y - my)).mean(0)
    ccc = 2 * cxy / (vx + vy + (mx - my) ** 2)
    return (1 - ccc).mean()


def make_case(name, loss_name, n_out, hidden, lr, weight_decay, seed, rows=64, width=12):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.randn(rows, width, generator=g)
    class_weights = None
    if loss_name == "ce":
        y = torch.randint(0, n_out, (rows,), generator=g)
        class_weights = torch.rand(n_out, generator=g) + 0.5
        loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights)
        targets = y.to(torch.float32).reshape(rows, 1)
    elif loss_name == "ccc":
        targets = torch.tanh(x[:, :n_out] * 0.7 + 0.3 * torch.randn(rows, n_out, generator=g))
        y = targets
        loss_fn = ccc_loss
    elif loss_name in ("bce", "gate"):
        targets = (torch.rand(rows, n_out, generator=g) < 0.4).to(torch.float32)
        y = targets
        loss_fn = torch.nn.BCEWithLogitsLoss()
    elif loss_name == "mse":
        targets = torch.rand(rows, n_out, generator=g)
        y = targets
        loss_fn = torch.nn.MSELoss()
    else:
        raise ValueError(loss_name)
    layers = [torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_out)] if hidden \
        else [torch.nn.Linear(width, n_out)]
    model = torch.nn.Sequential(*layers)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    tensors = {"x": x.numpy(), "targets": targets.numpy()}
    for i, m in enumerate(linears):
        tensors[f"init.{i}.weight"] = m.weight.detach().numpy().copy()
        tensors[f"init.{i}.bias"] = m.bias.detach().numpy().copy()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    for i, m in enumerate(linears):
        tensors[f"final.{i}.weight"] = m.weight.detach().numpy().copy()
        tensors[f"final.{i}.bias"] = m.bias.detach().numpy().copy()
    tensors["losses"] = np.asarray(losses, dtype=np.float32)
    if class_weights is not None:
        tensors["class_weights"] = class_weights.numpy()
    meta = {"loss": loss_name, "lr": repr(lr), "weight_decay": repr(weight_decay), "steps": str(STEPS),
            "layers": str(len(linears)), "framework": f"torch {torch.__version__}"}
    return name, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, meta


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/fit"
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    cases = [
        make_case("ce", "ce", 8, 16, 1e-2, 0.0, 1),
        make_case("ce_decay", "ce", 8, 16, 1e-2, 1e-2, 2),
        make_case("ccc", "ccc", 2, 16, 1e-2, 0.0, 3),
        make_case("bce", "bce", 12, 16, 1e-2, 0.0, 4),
        make_case("mse", "mse", 6, 16, 1e-2, 1e-3, 5),
        make_case("gate", "gate", 1, 0, 1e-2, 1e-3, 6),
    ]
    for name, tensors, meta in cases:
        save_file(tensors, os.path.join(out, f"{name}.safetensors"), metadata=meta)
        print(f"{name}: loss {tensors['losses'][0]:.5f} -> {tensors['losses'][-1]:.5f}")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("Made by `Tools/make_fit_reference.py` (PyTorch, 50 full-batch Adam steps per loss); "
                "read by Tests/AffectTrainingTests.\n")


if __name__ == "__main__":
    main()
