#!/usr/bin/python3
"""Writes tests/golden/interlocking_lenet.h5: interlocking backprop trained by PyTorch autograd,
which tests/algo/interlocking/InterlockingGoldenTest.cpp compares stagewise against.

The model is stagewise's `lenet` (width 4, BN, no dropout) as K = 4 one-block components with
auxiliary heads conv8_bn_gbpl_fc, conv8_bn_gbpl_fc and fc. Each scheme is computed from its
definition (seed-interlocking.md 1.1), not from stagewise's message plan: one forward pass with
the graph kept; each aux head runs once on a detached copy of its component's output, giving its
parameter gradients and v_c = dL_c/dh_c; main net c gets autograd's gradient of L_{t(c)} (sum:
L_c + L_{c+1}, mean: half that) with respect to its own parameters, where L_c enters the graph as
<h_c, v_c> (same gradients, and the aux head's batch norm updates once). Then one SGD step (lr
0.05, momentum 0.9, coupled weight decay 1e-3 on every parameter) - 3 steps, float64, from
float32-representable weights and inputs. Deterministic; rerun with
    /usr/bin/python3 tools/make_interlocking_golden.py
(Debian's torch 1.13 CPU + h5py) after a deliberate change of semantics, and commit the file."""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import cstr, open_out, put  # noqa: E402  (HDF5 conventions shared with GoldenTest)

K, STEPS, BATCH = 4, 3, 8
LR, MOMENTUM, WD = 0.05, 0.9, 1e-3
SCHEMES = [("local", 0, "next_only"), ("pairwise", 1, "next_only"), ("3wise", 2, "next_only"),
           ("global", 3, "next_only"), ("sum", 1, "sum"), ("mean", 1, "mean")]


class Pool(nn.Module):  # max pool, kernel = stride
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return F.max_pool2d(x, self.k, self.k)


class Flatten(nn.Module):
    def forward(self, x):
        return x.flatten(1)


class Gap(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


def components(c1=4, classes=10):
    c2 = c1 * 5 // 2
    return nn.ModuleList([
        nn.Sequential(nn.Conv2d(1, c1, 5), nn.BatchNorm2d(c1), nn.ReLU(), Pool(3)),
        nn.Sequential(nn.Conv2d(c1, c2, 5), nn.BatchNorm2d(c2), nn.ReLU(), Pool(2)),
        nn.Sequential(Flatten(), nn.Linear(c2 * 4, 500), nn.BatchNorm1d(500), nn.ReLU()),
        nn.Sequential(nn.Linear(500, classes)),
    ])


def aux_heads(c1=4, classes=10):
    c2 = c1 * 5 // 2
    conv = lambda c: nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), Gap(), nn.Linear(8, classes))
    return nn.ModuleList([conv(c1), conv(c2), nn.Sequential(nn.Linear(500, classes))])


def tensors(mods):
    """Parameters and BN buffers in stagewise's order (weight, bias per layer, layer by layer)."""
    ps, bs = [], []
    for mod in mods:
        for m in mod.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
                ps += [m.weight, m.bias]
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                bs += [m.running_mean, m.running_var]
    return ps, bs


def build(init_p=None, init_b=None):
    comps, auxs = components(), aux_heads()
    ps, bs = tensors(list(comps) + list(auxs))  # main nets first, then the aux heads (Model::params)
    with torch.no_grad():
        if init_p is None:
            for m in list(comps.modules()) + list(auxs.modules()):
                if isinstance(m, nn.modules.batchnorm._BatchNorm):  # non-trivial affine parameters
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0.0, 0.1)
            for p in ps:  # float32-representable starting point
                p.copy_(p.float().double())
        else:
            for p, v in zip(ps, init_p):
                p.copy_(v)
            for b, v in zip(bs, init_b):
                b.copy_(v)
    return comps, auxs, ps, bs


def train(scheme, d, mode, init_p, init_b, data):
    comps, auxs, ps, bs = build(init_p, init_b)
    opt = torch.optim.SGD(ps, lr=LR, momentum=MOMENTUM, weight_decay=WD)
    losses = []
    for x, y in data:
        hs, h = [], x
        for c in range(K):
            h = comps[c](h)
            hs.append(h)
        grads = {}
        S = []  # L_c as a function of the main nets: <h_c, dL_c/dh_c>
        for c in range(K - 1):
            hd = hs[c].detach().requires_grad_(True)
            la = F.cross_entropy(auxs[c](hd), y)
            aux_ps = list(auxs[c].parameters())
            g = torch.autograd.grad(la, aux_ps + [hd])
            grads.update(zip(map(id, aux_ps), g[:-1]))
            S.append((hs[c] * g[-1]).sum())
        head = F.cross_entropy(hs[K - 1], y)
        S.append(head)
        losses.append(head.item())
        for c in range(K):
            if mode == "next_only" or c == K - 1:
                obj = S[min(c + d, K - 1)]
            elif mode == "sum":
                obj = S[c] + S[c + 1]
            else:
                obj = 0.5 * (S[c] + S[c + 1])
            own = list(comps[c].parameters())
            grads.update(zip(map(id, own), torch.autograd.grad(obj, own, retain_graph=True)))
        for p in ps:
            p.grad = grads[id(p)]
        opt.step()
        opt.zero_grad(set_to_none=True)
    return ps, bs, losses


def flat(ts):
    return torch.cat([t.detach().reshape(-1) for t in ts])


def main():
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(11)
    _, _, p0, b0 = build()
    init_p = [p.detach().clone() for p in p0]
    init_b = [b.detach().clone() for b in b0]
    data = [(torch.randn(BATCH, 1, 28, 28).float().double(), torch.randint(0, 10, (BATCH,))) for _ in range(STEPS)]
    with open_out("interlocking_lenet.h5") as f:
        f.attrs["model"] = cstr("lenet")
        f.attrs["width"], f.attrs["steps"] = 4, STEPS
        f.attrs["lr"], f.attrs["momentum"], f.attrs["weight_decay"] = LR, MOMENTUM, WD
        put(f, "x", torch.stack([x for x, _ in data]))
        put(f, "y", torch.stack([y for _, y in data]))
        put(f, "init_params", flat(init_p))
        put(f, "init_buffers", flat(init_b))
        for name, d, mode in SCHEMES:
            ps, bs, losses = train(name, d, mode, init_p, init_b, data)
            g = f.create_group(name)
            g.attrs["distance"] = d
            g.attrs["mode"] = cstr(mode)
            put(g, "params", flat(ps))
            put(g, "buffers", flat(bs))
            put(g, "head_loss", np.array(losses))
            print("%-9s head losses %s" % (name, " ".join("%.6f" % l for l in losses)))
    print("wrote", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "interlocking_lenet.h5"))


if __name__ == "__main__":
    main()
