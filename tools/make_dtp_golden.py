#!/usr/bin/python3
"""Writes tests/golden/dtp_step.h5: one full DTP (L-DRL) training step of a 1/32-width simple_vgg
(channels 4,4,8,8,16; CIFAR-shaped input; batch 4) computed by an independent PyTorch
implementation written from the spec (../shared/spec/seed-dtp.md 1-2), with autograd for every
gradient. tests/algo/dtp/DtpTest.cpp (DtpGolden.*) replays the exported noise and compares the
per-iteration L-DRL losses, the feedback weights after the feedback phase, the layer-local forward
losses and the forward weights after the step (spec 7, E9). Deterministic; rerun with
    /usr/bin/python3 tools/make_dtp_golden.py
after a deliberate change of semantics and commit the result (Debian's torch 1.13 CPU + h5py)."""
import os

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "dtp_step.h5")
CH = [4, 4, 8, 8, 16]
B, CLASSES = 4, 10
BETA, LR_F, MOMENTUM, WD = 0.7, 0.05, 0.9, 1e-4
K = [3, 2, 3, 4, 3]                 # G_1..G_5, input -> output
SIGMA = [0.4, 0.4, 0.2, 0.2, 0.08]
LR_G = [1e-2, 3.5e-2, 8e-2, 8e-2, 0.18]  # larger than the CIFAR recipe so that one step moves G visibly


class ConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        return F.max_pool2d(F.elu(self.conv(x)), 2, return_indices=True)


class ConvFeedback(nn.Module):
    def __init__(self, cin, cout):  # inverts ConvBlock(cin, cout)
        super().__init__()
        self.convt = nn.ConvTranspose2d(cout, cin, 3, padding=1)

    def forward(self, v, idx):
        return self.convt(F.elu(F.max_unpool2d(v, idx, 2)))


def main():
    torch.manual_seed(2022)
    fwd = [ConvBlock(ci, co) for ci, co in zip([3] + CH[:-1], CH)]
    head = nn.Linear(CH[-1], CLASSES)
    fb = [ConvFeedback(ci, co) for ci, co in zip([3] + CH[:-1], CH)]
    fb_head = nn.Linear(CLASSES, CH[-1])
    x = torch.randn(B, 3, 32, 32)
    labels = torch.tensor([3, 7, 0, 7])

    def F_i(i, h):  # block i of the forward net; returns (output, pool indices or None)
        if i < 5:
            return fwd[i](h)
        return head(h.flatten(1)), None

    def G_i(i, v, idx):
        if i < 5:
            return fb[i](v, idx)
        return fb_head(v).reshape(-1, CH[-1], 1, 1)

    # No modification times anywhere (root group included): reruns write byte-identical files.
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    f = h5py.File(h5py.h5f.create(OUT.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))
    put = lambda name, a: f.create_dataset(name, data=np.asarray(a.detach().numpy() if torch.is_tensor(a) else a),
                                           track_times=False)
    put("x", x)
    put("labels", labels.numpy().astype(np.int64))
    names = {}
    for k in range(5):
        names[f"conv{k}.conv.weight"] = fwd[k].conv.weight
        names[f"conv{k}.conv.bias"] = fwd[k].conv.bias
        put(f"feedback/G{k}.weight", fb[k].convt.weight)
        put(f"feedback/G{k}.bias", fb[k].convt.bias)
    names["head.linear.weight"], names["head.linear.bias"] = head.weight, head.bias
    put("feedback/G5.weight", fb_head.weight)
    put("feedback/G5.bias", fb_head.bias)
    for n, p in names.items():
        put("params/" + n, p)
    for n, v in [("beta", BETA), ("lr_f", LR_F), ("momentum", MOMENTUM), ("weight_decay", WD)]:
        put("hyper/" + n, np.array([v], dtype=np.float64))
    put("hyper/iterations", np.array(K, dtype=np.int64))
    put("hyper/sigma", np.array(SIGMA, dtype=np.float64))
    put("hyper/lr_g", np.array(LR_G, dtype=np.float64))

    # Feedback phase (spec 2.1): clean forward without gradients, then K_i iterations per block.
    with torch.no_grad():
        hs, idxs, h = [], [], x
        for i in range(6):
            h, idx = F_i(i, h)
            hs.append(h)
            idxs.append(idx)
    gparams = [fb[i].parameters() for i in range(5)] + [fb_head.parameters()]
    for i in range(1, 6):
        opt = torch.optim.SGD(gparams[i], lr=LR_G[i - 1], momentum=MOMENTUM)
        xi, yi, idx = hs[i - 1], hs[i], idxs[i]
        losses = []
        for k in range(K[i - 1]):
            sigma = SIGMA[i - 1]
            dx = sigma * torch.randn_like(xi)
            dy = sigma * torch.randn_like(yi)
            put(f"noise/G{i}/it{k}/dx", dx)
            put(f"noise/G{i}/it{k}/dy", dy)
            r = G_i(i, yi, idx)
            with torch.no_grad():
                y_noisy, idx_noisy = F_i(i, xi + dx)
            r_noisy = G_i(i, y_noisy, idx_noisy)
            r_hat = G_i(i, yi + dy, idx)
            loss = (-2 * (dx * (r_noisy - r)).flatten(1).sum(1).mean() + ((r_hat - r) ** 2).flatten(1).sum(1).mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        put(f"drl_loss/G{i}", np.array(losses, dtype=np.float64))
        w = fb[i].convt.weight if i < 5 else fb_head.weight
        put(f"after_feedback/G{i}.weight", w)

    # Forward phase (spec 2.2): detached block inputs, first target, difference correction.
    hs, idxs, h = [], [], x
    for i in range(6):
        h, idx = F_i(i, h.detach())
        hs.append(h)
        idxs.append(idx)
    z = hs[5].detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(z, labels, reduction="sum"), z)
    targets = [None] * 6
    targets[5] = hs[5].detach() - BETA * grad
    with torch.no_grad():
        for i in range(5, 0, -1):
            targets[i - 1] = hs[i - 1] + G_i(i, targets[i], idxs[i]) - G_i(i, hs[i], idxs[i])
    layer = [0.5 * ((hs[i] - targets[i]) ** 2).flatten(1).sum(1).mean() for i in range(6)]
    put("local_loss", np.array([l.item() for l in layer], dtype=np.float64))
    fparams = [p for m in fwd for p in m.parameters()] + list(head.parameters())
    fopt = torch.optim.SGD(fparams, lr=LR_F, momentum=MOMENTUM, weight_decay=WD)
    fopt.zero_grad()
    torch.stack(layer).sum().backward()
    fopt.step()
    for n, p in names.items():
        put("after_step/" + n, p)
    f.close()


if __name__ == "__main__":
    main()
