#!/usr/bin/env python3
"""`affect fit` against a PyTorch MLP trained with the same settings, on a synthetic ABAW dataset.

Both train Dense(hidden) ReLU [Dropout] Dense(n) with torch.optim.Adam's defaults, the same batch size,
epochs, learning rate, weight decay, dropout, class weights (EXPR: balanced, N / (8 * count)) and early
stopping on the validation metric (EXPR macro F1, VA mean CCC) with the same patience. The heads are then
scored on the held-out test split: affect's head applied with `affect run HEAD` (the file users get), the
PyTorch model directly. Several seeds; their mean and spread are printed.

    /work/main/Tools/.venv/bin/python Tools/make_synthetic_abaw.py /tmp/syn
    /work/main/Tools/.venv/bin/python Tools/compare_fit.py /tmp/syn --affect .build/release/affect
"""
import argparse
import os
import subprocess
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from sklearn.metrics import f1_score


def read_labels(path, task):
    rows = open(path).read().splitlines()[1:]
    if task == "expr":
        y = np.array([int(r) for r in rows])
        return y, y >= 0
    y = np.array([[float(v) for v in r.split(",")] for r in rows], dtype=np.float32)
    return y, ~(y == -5).any(1)


def load_split(root, split, task):
    x = load_file(os.path.join(root, "flat", f"{split}.safetensors"))["features"]
    y, keep = read_labels(os.path.join(root, "flat", f"{split}.{task}.txt"), task)
    return x[keep], y[keep]


def ccc(x, y):
    mx, my = x.mean(), y.mean()
    return 2 * ((x - mx) * (y - my)).mean() / (x.var() + y.var() + (mx - my) ** 2)


def metric(task, out, y):
    if task == "expr":
        return f1_score(y, out.argmax(1), average="macro", labels=list(range(8)), zero_division=0)
    return np.mean([ccc(out[:, j].astype(np.float64), y[:, j].astype(np.float64)) for j in range(2)])


def ccc_loss(z, y):
    o = torch.tanh(z)
    mx, my = o.mean(0), y.mean(0)
    vx, vy = ((o - mx) ** 2).mean(0), ((y - my) ** 2).mean(0)
    return (1 - 2 * ((o - mx) * (y - my)).mean(0) / (vx + vy + (mx - my) ** 2)).mean()


def torch_fit(task, train, val, a, seed):
    torch.manual_seed(seed)
    (x, y), (xv, yv) = train, val
    n = 8 if task == "expr" else 2
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], a.hidden), torch.nn.ReLU(), torch.nn.Dropout(a.dropout),
                                torch.nn.Linear(a.hidden, n))
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    if task == "expr":
        counts = np.bincount(y, minlength=8)
        w = np.where(counts > 0, len(y) / (8 * np.maximum(counts, 1)), 0).astype(np.float32)
        ce = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(w))
        loss_fn, yt = ce, torch.from_numpy(y)
    else:
        loss_fn, yt = ccc_loss, torch.from_numpy(y)
    xt, xvt = torch.from_numpy(x), torch.from_numpy(xv)

    def predict(inputs):
        model.eval()
        with torch.no_grad():
            z = model(inputs)
        model.train()
        return (torch.softmax(z, 1) if task == "expr" else torch.tanh(z)).numpy()

    best, best_state, stale = -np.inf, None, 0
    for epoch in range(a.epochs):
        perm = torch.randperm(len(x))
        for s in range(0, len(x), a.batch_size):
            idx = perm[s:s + a.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        m = metric(task, predict(xvt), yv)
        if m > best:
            best, best_state, stale = m, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            stale += 1
            if stale >= a.patience:
                break
    model.load_state_dict(best_state)
    return model, predict


def affect_fit(task, root, a, seed, work):
    head = os.path.join(work, f"{task}_{seed}.safetensors")
    flat = os.path.join(root, "flat")
    cmd = [a.affect, "fit", "--task", task, "--features", f"{flat}/train.safetensors", "--labels", f"{flat}/train.{task}.txt",
           "--val-features", f"{flat}/val.safetensors", "--val-labels", f"{flat}/val.{task}.txt", "-o", head,
           "--hidden", str(a.hidden), "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--lr", str(a.lr),
           "--weight-decay", str(a.weight_decay), "--dropout", str(a.dropout), "--patience", str(a.patience),
           "--seed", str(seed), "--threads", str(a.threads)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return head


def affect_run(head, x, work):
    inputs, out = os.path.join(work, "in.safetensors"), os.path.join(work, "out.safetensors")
    save_file({"input.features": np.ascontiguousarray(x)}, inputs)
    subprocess.run([a_global.affect, "run", head, inputs, "-o", out], check=True, stdout=subprocess.DEVNULL)
    return load_file(out)["output.probs"]


def main():
    global a_global
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root")
    p.add_argument("--affect", default=".build/release/affect")
    p.add_argument("--tasks", default="expr,va")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = a_global = p.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as work:
        for task in a.tasks.split(","):
            train, val, test = (load_split(a.root, s, task) for s in ("train", "val", "test"))
            ours, theirs = [], []
            for seed in range(a.seeds):
                head = affect_fit(task, a.root, a, seed, work)
                ours.append(metric(task, affect_run(head, test[0], work), test[1]))
                _, predict = torch_fit(task, train, val, a, seed)
                theirs.append(metric(task, predict(torch.from_numpy(test[0])), test[1]))
            name = "macro F1" if task == "expr" else "mean CCC"
            print(f"{task} test {name} over {a.seeds} seeds: affect fit {np.mean(ours):.4f} (±{np.std(ours):.4f}) "
                  f"{['%.4f' % v for v in ours]}, PyTorch {np.mean(theirs):.4f} (±{np.std(theirs):.4f}) "
                  f"{['%.4f' % v for v in theirs]}, difference {np.mean(ours) - np.mean(theirs):+.4f}")


if __name__ == "__main__":
    main()
