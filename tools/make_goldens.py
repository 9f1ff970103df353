#!/usr/bin/python3
"""Writes the PyTorch golden fixtures that tests/nn/GoldenTest.cpp compares stagewise against:
every layer forward/backward, optimizer steps, LR schedules and whole LeNet/ResNet-18 training
steps, as small float32 HDF5 files in tests/golden/. Deterministic (fixed seeds); rerun with
    /usr/bin/python3 tools/make_goldens.py
after a deliberate change of semantics and commit the result (Debian's torch 1.13 CPU + h5py)."""
import copy
import math
import os

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")


# ---------------------------------------------------------------------------------------------
# HDF5 helpers. Floats are stored as float32, integers as int64; datasets of 4k+ elements are
# gzip+shuffle compressed (HDF5's built-in deflate, readable by our H5 wrapper). track_times off
# so that a rerun with the same torch writes identical files.

def put(g, name, a):
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype.kind == "f":
        a = a.astype(np.float32)
    elif a.dtype.kind in "iub":
        a = a.astype(np.int64)
    kw = dict(track_times=False)
    if a.size >= 4096:
        kw.update(compression="gzip", compression_opts=9, shuffle=True)
    g.create_dataset(name, data=a, **kw)


def put_scalar(g, name, v):
    put(g, name, np.array([v], dtype=np.float64))


def cstr(s):
    # Fixed-length string with a trailing NUL: our H5 wrapper reads string attributes as
    # NUL-terminated C strings of the stored size and would drop the last character of h5py's
    # default (NUL-padded, exactly sized) strings.
    return np.array(s.encode(), dtype="S%d" % (len(s) + 1))


def open_out(fname):
    # Object headers without modification times (root group included), so that reruns write
    # byte-identical files and git sees no change.
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    fid = h5py.h5f.create(os.path.join(OUT, fname).encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
    return h5py.File(fid)


def new_group(parent, name):
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


# ---------------------------------------------------------------------------------------------
# Layers: x, parameters, a random upstream gradient dy, y, dx and parameter gradients.

def run_layer(f, name, module, x, attrs, dy=None, train=True):
    module.train(train)
    x = x.clone().detach().requires_grad_(True)
    y = module(x)
    g = new_group(f, name)
    for k, v in attrs.items():
        g.attrs[k] = v
    put(g, "x", x)
    put(g, "y", y)
    for pname, p in module.named_parameters(recurse=False):
        put(g, pname, p)
    if not train:
        return g
    dy = torch.randn_like(y) if dy is None else dy
    y.backward(dy)
    put(g, "dy", dy)
    put(g, "dx", x.grad)
    for pname, p in module.named_parameters(recurse=False):
        put(g, pname + "_grad", p.grad)
    return g


def distinct(shape, lo=-2.0, hi=2.0):
    # Values on a grid of distinct numbers in random order: max pooling has no ties.
    n = int(np.prod(shape))
    return (torch.randperm(n).float() / n * (hi - lo) + lo).reshape(shape)


def away_from_zero(shape, gap=0.1):
    x = torch.randn(shape)
    return x + gap * torch.sign(x)


def make_layers():
    torch.manual_seed(1)
    with open_out("layers.h5") as f:
        run_layer(f, "linear", nn.Linear(7, 5), torch.randn(4, 7), dict(inf=7, outf=5, bias=1))
        run_layer(f, "linear_nobias", nn.Linear(6, 3, bias=False), torch.randn(5, 6),
                  dict(inf=6, outf=3, bias=0))

        # Conv2d: (name, cin, cout, k, stride, pad, bias, input shape). Non-square inputs catch
        # h/w mix-ups; batch 1 takes the CPU backend's single-sample GEMM path, k1 s1 p0 its
        # direct (no im2col) path.
        convs = [("conv_k3s1p1_bias", 3, 4, 3, 1, 1, True, (2, 3, 7, 6)),
                 ("conv_k3s2p1_nobias", 3, 5, 3, 2, 1, False, (2, 3, 8, 8)),
                 ("conv_k5s1p0", 2, 3, 5, 1, 0, True, (2, 2, 9, 9)),
                 ("conv_k1s2p0", 3, 4, 1, 2, 0, True, (2, 3, 6, 6)),
                 ("conv_k3s1p1_n1", 3, 4, 3, 1, 1, True, (1, 3, 6, 7)),
                 ("conv_k1s1p0_n1", 4, 3, 1, 1, 0, True, (1, 4, 5, 5)),
                 ("conv_k1s1p0_n3", 4, 3, 1, 1, 0, False, (3, 4, 5, 5))]
        for name, ci, co, k, s, p, b, shp in convs:
            run_layer(f, name, nn.Conv2d(ci, co, k, s, p, bias=b), torch.randn(shp),
                      dict(cin=ci, cout=co, kernel=k, stride=s, pad=p, output_pad=0, bias=int(b)))

        convts = [("convt_k3s1p1", 4, 3, 3, 1, 1, 0, True, (2, 4, 5, 5)),
                  ("convt_k3s2p1_op1", 4, 3, 3, 2, 1, 1, True, (2, 4, 5, 4)),
                  ("convt_k3s2p1_nobias", 3, 2, 3, 2, 1, 0, False, (2, 3, 4, 4))]
        for name, ci, co, k, s, p, op, b, shp in convts:
            m = nn.ConvTranspose2d(ci, co, k, s, p, output_padding=op, bias=b)
            run_layer(f, name, m, torch.randn(shp),
                      dict(cin=ci, cout=co, kernel=k, stride=s, pad=p, output_pad=op, bias=int(b)))

        # Batch norm: random affine parameters and running statistics, momentum 0.1.
        for name, c, shp in [("bn1d", 5, (6, 5)), ("bn2d", 3, (4, 3, 3, 3))]:
            for train in (True, False):
                m = nn.BatchNorm1d(c, momentum=0.1) if len(shp) == 2 else nn.BatchNorm2d(c, momentum=0.1)
                with torch.no_grad():
                    m.weight.copy_(1 + 0.3 * torch.randn(c))
                    m.bias.copy_(0.3 * torch.randn(c))
                    m.running_mean.copy_(0.5 * torch.randn(c))
                    m.running_var.copy_(0.5 + torch.rand(c))
                rm0, rv0 = m.running_mean.clone(), m.running_var.clone()
                x = 1.5 * torch.randn(shp) + 0.7
                g = run_layer(f, name + ("_train" if train else "_eval"), m, x,
                              dict(channels=c, momentum=0.1, eps=1e-5), train=train)
                put(g, "running_mean", rm0)
                put(g, "running_var", rv0)
                put(g, "running_mean_after", m.running_mean)
                put(g, "running_var_after", m.running_var)

        acts = [("relu", nn.ReLU()), ("elu", nn.ELU(alpha=1.0)), ("tanh", nn.Tanh()),
                ("sigmoid", nn.Sigmoid())]
        for name, m in acts:
            run_layer(f, name, m, away_from_zero((3, 4, 5)), dict(alpha=1.0))

        for name, k, s, shp in [("maxpool_k2s2", 2, 2, (2, 3, 7, 6)), ("maxpool_k3s3", 3, 3, (2, 2, 8, 8))]:
            x = distinct(shp)
            g = run_layer(f, name, nn.MaxPool2d(k, s), x, dict(kernel=k, stride=s))
            _, idx = F.max_pool2d(x, k, s, return_indices=True)
            put(g, "indices", idx)

        # Unpooling: the pool runs on x0 (no ties) for the indices; u is the unpool input.
        for name, k, s, shp in [("maxunpool_k2s2", 2, 2, (2, 3, 6, 6)), ("maxunpool_k2s2_odd", 2, 2, (2, 3, 7, 6))]:
            x0 = distinct(shp)
            _, idx = F.max_pool2d(x0, k, s, return_indices=True)
            u = torch.randn(idx.shape, requires_grad=True)
            y = F.max_unpool2d(u, idx, k, s, output_size=shp[2:])
            dy = torch.randn_like(y)
            y.backward(dy)
            g = new_group(f, name)
            g.attrs["kernel"], g.attrs["stride"] = k, s
            for n, v in [("x0", x0), ("indices", idx), ("x", u), ("y", y), ("dy", dy), ("dx", u.grad)]:
                put(g, n, v)

        run_layer(f, "avgpool_k2s2", nn.AvgPool2d(2, 2), torch.randn(2, 3, 6, 6), dict(kernel=2, stride=2, pad=0))
        run_layer(f, "avgpool_k3s2p1", nn.AvgPool2d(3, 2, 1, count_include_pad=True),
                  torch.randn(2, 3, 7, 7), dict(kernel=3, stride=2, pad=1))
        run_layer(f, "global_avgpool", nn.AdaptiveAvgPool2d(1), torch.randn(2, 4, 5, 5), dict(kernel=0, stride=0, pad=0))

        # Losses (mean reduction).
        logits = (2 * torch.randn(8, 10)).requires_grad_(True)
        labels = torch.randint(0, 10, (8,))
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        g = new_group(f, "xent")
        put(g, "logits", logits)
        put(g, "labels", labels)
        put_scalar(g, "loss", loss.item())
        put(g, "dlogits", logits.grad)
        put_scalar(g, "correct", int((logits.argmax(1) == labels).sum()))

        y = torch.randn(6, 5, requires_grad=True)
        t = torch.randn(6, 5)
        loss = F.mse_loss(y, t)
        loss.backward()
        g = new_group(f, "mse")
        put(g, "y", y)
        put(g, "target", t)
        put_scalar(g, "loss", loss.item())
        put(g, "dy", y.grad)


# ---------------------------------------------------------------------------------------------
# Optimizers: one [4, 5] tensor, 5 steps with fixed gradients and a per-step learning rate.

def lars_reference(p0, grads, lrs, momentum, dampening, nesterov, wd, trust=0.02, eps=1e-8):
    """seed-petra.md 4.3: clipped trust ratio, then the SGD of 4.1 with wd = 0."""
    p = p0.clone()
    buf = None
    out = []
    for g, lr in zip(grads, lrs):
        pn, gn = float(p.double().norm()), float(g.double().norm())
        if pn != 0.0 and gn != 0.0:
            local = trust * pn / (gn + wd * pn + eps)
            a = min(local / lr, 1.0)
            CLIPPED.append(a < 1.0)
            g = (g + wd * p) * a
        d = g
        if momentum != 0:
            buf = d.clone() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
        out.append(p.clone())
    return out


CLIPPED = []  # LARS steps taken with a < 1, to check that both branches are exercised


def make_optim():
    torch.manual_seed(2)
    p0 = torch.randn(4, 5)
    grads = [torch.randn(4, 5) * sc for sc in (1.0, 0.5, 2.0, 0.1, 1.0)]
    lrs = [0.1, 0.05, 0.2, 0.1, 0.02]
    lrs_lars = [1.0, 0.01, 0.5, 0.05, 0.01]  # steps 1, 3 clipped (a < 1), 2, 5 not; 4 has g = 0
    cases = [
        ("sgd_plain", "sgd", dict(momentum=0.0), 1.0),
        ("sgd_momentum_damp_wd", "sgd", dict(momentum=0.9, dampening=0.1, weight_decay=1e-2), 1.0),
        ("sgd_nesterov", "sgd", dict(momentum=0.9, nesterov=True, weight_decay=5e-4), 1.0),
        ("sgd_momentum_gradscale", "sgd", dict(momentum=0.9, weight_decay=1e-3), 0.5),
        ("adam", "adam", dict(), 1.0),
        ("adam_amsgrad_wd", "adam", dict(amsgrad=True, weight_decay=1e-2, betas=(0.8, 0.99)), 1.0),
    ]
    with open_out("optim.h5") as f:
        for name, kind, kw, scale in cases:
            p = p0.clone().requires_grad_(True)
            opt = torch.optim.SGD([p], lr=lrs[0], **kw) if kind == "sgd" else \
                torch.optim.Adam([p], lr=lrs[0], **kw)
            after = []
            for g, lr in zip(grads, lrs):
                for grp in opt.param_groups:
                    grp["lr"] = lr
                p.grad = g * scale
                opt.step()
                after.append(p.detach().clone())
            write_optim(f, name, kind, kw, scale, p0, grads, lrs, after)
        grads_l = [g.clone() for g in grads]
        grads_l[3] = torch.zeros(4, 5)  # zero gradient: left untouched, wd not added
        for name, kw in [("lars_momentum_damp_wd", dict(momentum=0.9, dampening=0.1, weight_decay=5e-3)),
                         ("lars_nesterov", dict(momentum=0.9, nesterov=True, weight_decay=1e-3)),
                         ("lars_plain_wd", dict(momentum=0.0, weight_decay=1e-2))]:
            after = lars_reference(p0, grads_l, lrs_lars, kw["momentum"], kw.get("dampening", 0.0),
                                   kw.get("nesterov", False), kw["weight_decay"])
            write_optim(f, name, "lars", kw, 1.0, p0, grads_l, lrs_lars, after)
        assert any(CLIPPED) and not all(CLIPPED), CLIPPED


def write_optim(f, name, kind, kw, scale, p0, grads, lrs, after):
    g = new_group(f, name)
    g.attrs["kind"] = cstr(kind)
    g.attrs["momentum"] = float(kw.get("momentum", 0.0))
    g.attrs["dampening"] = float(kw.get("dampening", 0.0))
    g.attrs["weight_decay"] = float(kw.get("weight_decay", 0.0))
    g.attrs["nesterov"] = int(kw.get("nesterov", False))
    g.attrs["amsgrad"] = int(kw.get("amsgrad", False))
    b1, b2 = kw.get("betas", (0.9, 0.999))
    g.attrs["beta1"], g.attrs["beta2"], g.attrs["eps"] = float(b1), float(b2), 1e-8
    g.attrs["grad_scale"] = float(scale)
    put(g, "param0", p0)
    put(g, "grads", torch.stack(grads))
    put(g, "lrs", np.array(lrs, dtype=np.float64))
    put(g, "params", torch.stack(after))


# ---------------------------------------------------------------------------------------------
# LR schedules, computed from seed-petra.md 4.4 independently of the C++ code.

def lr_reference(c, epoch, it, ipe):
    lr0 = c["lr"] * c["accum"] * c["batch"] / 256 if c["goyal"] else c["lr"]
    W = c["warmup"]
    if epoch < W:
        i = epoch * ipe + it
        return lr0 * (i + 1) / (W * ipe)
    e, T = epoch - W, c["epochs"] - W
    if c["kind"] == "constant":
        return lr0
    if c["kind"] == "step":
        return lr0 * c["factor"] ** sum(1 for m in c["milestones"] if m <= epoch)
    if c["kind"] == "cosine":
        return 0.5 * lr0 * (1 + math.cos(math.pi * e / (T + 1)))
    if c["kind"] == "poly":
        return lr0 * (1 - (e + 1) / T) ** 2
    raise ValueError(c["kind"])


def make_lr():
    base = dict(lr=0.1, kind="constant", milestones=[], factor=0.1, warmup=0, goyal=0, accum=1, batch=128, epochs=1)
    cases = [
        ("step_warmup", dict(kind="step", milestones=[3, 6], warmup=2, epochs=8), 5),
        ("step_nowarmup", dict(kind="step", milestones=[2, 4, 5], factor=0.5, lr=0.4, epochs=7), 3),
        ("cosine_goyal_warmup", dict(kind="cosine", warmup=1, epochs=6, goyal=1, accum=2, batch=64), 4),
        ("poly", dict(kind="poly", lr=0.2, epochs=5), 3),
        ("poly_warmup_goyal", dict(kind="poly", lr=0.1, epochs=9, warmup=3, goyal=1, accum=4, batch=32), 2),
        ("constant_goyal_warmup", dict(kind="constant", warmup=3, goyal=1, accum=4, batch=256, epochs=5), 3),
    ]
    with open_out("lr_schedule.h5") as f:
        for name, over, ipe in cases:
            c = dict(base, **over)
            g = new_group(f, name)
            for k in ("lr", "factor"):
                g.attrs[k] = float(c[k])
            for k in ("warmup", "goyal", "accum", "batch", "epochs"):
                g.attrs[k] = int(c[k])
            g.attrs["kind"] = cstr(c["kind"])
            put(g, "milestones", np.array(c["milestones"] + [-1], dtype=np.int64))  # -1: end marker
            rows = [(e, i, ipe, lr_reference(c, e, i, ipe)) for e in range(c["epochs"]) for i in range(ipe)]
            g.create_dataset("table", data=np.array(rows, dtype=np.float64), track_times=False)


# ---------------------------------------------------------------------------------------------
# Whole training steps. The PyTorch twins follow src/nn/Zoo.cpp layer by layer; `ordered`
# lists (our parameter name, tensor) in Model::params() order and our buffers likewise.

# Kinks. Gradients jump where a ReLU input crosses 0 or a max-pool window's runner-up overtakes
# its max; two float32 implementations disagree there when the distance to the kink is below
# their rounding error. The twins report, while _KINKS is a list, each ReLU input and each
# window's (max - runner-up) gap so that pick_input() can choose a batch far from all kinks.
_KINKS = None


def relu(z):
    if _KINKS is not None:
        _KINKS.append(z.detach().double().flatten())
    return F.relu(z)


def max_pool(z, k):
    if _KINKS is not None:
        w = F.unfold(z.detach().double(), k, stride=k).view(z.shape[0], z.shape[1], k * k, -1)
        top2 = w.topk(2, dim=2).values
        # Windows that are all ReLU zeros tie harmlessly: both pick the first, whose gradient
        # the ReLU blocks anyway; they are reported as far from a kink.
        gap = torch.where(top2[:, :, 0] == 0, torch.full_like(top2[:, :, 0], math.inf),
                          top2[:, :, 0] - top2[:, :, 1])
        _KINKS.append(gap.flatten())
    return F.max_pool2d(z, k, k)


def kink_margin(model, x):
    """min over kinks of distance / (float32 error of that distance), the error estimated as
    the float32 - float64 difference of the same forward pass (worst per tensor)."""
    global _KINKS
    rec = []
    for dt in (torch.float32, torch.float64):
        _KINKS = []
        with torch.no_grad():
            copy.deepcopy(model).to(dt).train()(x.to(dt))
        rec.append(_KINKS)
    _KINKS = None
    worst = math.inf
    for a, b in zip(*rec):
        fin = torch.isfinite(b) & torch.isfinite(a)
        a, b = a[fin], b[fin]
        err = max(float((a - b).abs().max()), 1e-30)
        worst = min(worst, float(b.abs().min()) / err)
    return worst


def pick_input(model, shape, need=25.0, tries=20000):
    """First random batch whose kinks all lie `need` float32 errors away: the gradient is then
    well defined at float32 precision and the comparison does not hinge on rounding luck."""
    for t in range(tries):
        x = torch.randn(shape)
        r = kink_margin(model, x)
        if r >= need:
            print("  %s: input after %d tries, kink margin %.1f float32 errors" % (type(model).__name__, t + 1, r))
            return x, r
    raise RuntimeError("no input with kink margin %g in %d tries" % (need, tries))


class LeNet(nn.Module):
    def __init__(self, c1=20, classes=10):
        super().__init__()
        c2 = c1 * 5 // 2
        self.conv1, self.bn1 = nn.Conv2d(1, c1, 5), nn.BatchNorm2d(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c2, 5), nn.BatchNorm2d(c2)
        self.fc1, self.bn3 = nn.Linear(c2 * 4, 500), nn.BatchNorm1d(500)
        self.head = nn.Linear(500, classes)

    def forward(self, x):
        x = max_pool(relu(self.bn1(self.conv1(x))), 3)
        x = max_pool(relu(self.bn2(self.conv2(x))), 2)
        x = relu(self.bn3(self.fc1(x.flatten(1))))
        return self.head(x)

    def ordered(self):
        P = [("conv1.conv", self.conv1), ("conv1.bn", self.bn1), ("conv2.conv", self.conv2),
             ("conv2.bn", self.bn2), ("fc1.linear", self.fc1), ("fc1.bn", self.bn3), ("head.linear", self.head)]
        return expand(P)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.sc = None
        if stride != 1 or cin != cout:
            self.sc = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
            self.scbn = nn.BatchNorm2d(cout)

    def forward(self, x):
        y = self.bn2(self.conv2(relu(self.bn1(self.conv1(x)))))
        return relu(y + (x if self.sc is None else self.scbn(self.sc(x))))


class ResNet(nn.Module):
    def __init__(self, layers=(2, 2, 2, 2), width=64, classes=10):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width)
        self.names, blocks, c = [], [], width
        for g, n in enumerate(layers):
            for b in range(n):
                blocks.append(Block(c, width << g, 2 if (g > 0 and b == 0) else 1))
                self.names.append("layer%d.%d.block" % (g + 1, b))
                c = width << g
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = relu(self.bn(self.conv(x)))
        for b in self.blocks:
            x = b(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def ordered(self):
        P = [("stem.conv", self.conv), ("stem.bn", self.bn)]
        for n, b in zip(self.names, self.blocks):
            P += [(n + ".conv1", b.conv1), (n + ".bn1", b.bn1), (n + ".conv2", b.conv2), (n + ".bn2", b.bn2)]
            if b.sc is not None:
                P += [(n + ".shortcut.conv", b.sc), (n + ".shortcut.bn", b.scbn)]
        P.append(("head.fc", self.fc))
        return expand(P)


def expand(P):
    params, buffers = [], []
    for n, m in P:
        params.append((n + ".weight", m.weight))
        if m.bias is not None:
            params.append((n + ".bias", m.bias))
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            buffers += [(n + ".running_mean", m.running_mean), (n + ".running_var", m.running_var)]
    return params, buffers


def randomize(model):
    # Non-trivial BN affine parameters so that their gradients and the update are exercised.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
                m.bias.copy_(0.2 * torch.randn_like(m.bias))
            elif isinstance(m, nn.Conv2d) and m.bias is None:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def hash_uniform(seed, k, n):
    """Uniform [-1, 1) float32 values for element i of parameter k, from a splitmix64 hash of
    (seed, k, i); GoldenTest.cpp's hashUniform computes the same bits. Lets the width-64 fixture
    describe 11M initial parameters by a seed instead of storing them."""
    M = np.uint64(0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)) ^ (np.uint64(k) << np.uint64(40))
        z = (np.arange(n, dtype=np.uint64) + x + np.uint64(0x9E3779B97F4A7C15)) & M
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -23)  # exact: 24-bit integers
    return u - np.float32(1.0)


def put_names(f, name, names):
    # Newline-separated names as a uint8 blob: one dataset instead of one group per parameter.
    f.create_dataset(name, data=np.frombuffer("\n".join(names).encode(), dtype=np.uint8), track_times=False)


def flat(ts):
    return torch.cat([t.detach().flatten() for t in ts])


def train_step(f, model, x, labels, sampled=False, hash_seed=None):
    """One SGD step (lr 0.1, momentum 0.9, wd 5e-4) on cross-entropy. Parameters, gradients and
    buffers are stored flat (concatenated in Model::params() / buffers() order) with their names
    and element counts; the width-64 fixture keeps per-tensor norms and sampled coordinates."""
    params, buffers = model.ordered()
    f.attrs["lr"], f.attrs["momentum"], f.attrs["weight_decay"] = 0.1, 0.9, 5e-4
    put_names(f, "param_names", [n for n, _ in params])
    put(f, "param_numel", np.array([p.numel() for _, p in params], dtype=np.int64))
    put_names(f, "buffer_names", [n for n, _ in buffers])
    put(f, "buffer_numel", np.array([b.numel() for _, b in buffers], dtype=np.int64))
    if hash_seed is not None:
        f.attrs["hash_seed"] = hash_seed
        scales = []
        with torch.no_grad():
            for k, (n, p) in enumerate(params):
                scale, offset = hash_scale(n, p)
                scales.append((scale, offset))
                v = hash_uniform(hash_seed, k, p.numel()) * np.float32(scale) + np.float32(offset)
                p.copy_(torch.from_numpy(v.astype(np.float32)).reshape(p.shape))
        put(f, "hash_scale", np.array([s for s, _ in scales], dtype=np.float32))
        put(f, "hash_offset", np.array([o for _, o in scales], dtype=np.float32))
    init = [p.detach().clone() for _, p in params]
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    opt = torch.optim.SGD([p for _, p in params], lr=0.1, momentum=0.9, weight_decay=5e-4)
    grads = [p.grad.detach().clone() for _, p in params]
    opt.step()
    put(f, "x", x)
    put(f, "labels", labels)
    put(f, "logits", logits)
    put_scalar(f, "loss", loss.item())
    put(f, "buffers_after", flat([b for _, b in buffers]))
    if not sampled:
        put(f, "init", flat(init))
        put(f, "grad", flat(grads))
        put(f, "after", flat([p for _, p in params]))
        return
    # Width 64: 11M parameters; keep norms and up to 64 sampled coordinates per tensor
    # (sample_idx indexes the flat concatenation).
    rng = np.random.default_rng(7)
    idx, off = [], 0
    for _, p in params:
        n = p.numel()
        idx.append(off + (np.arange(n) if n <= 64 else np.sort(rng.choice(n, 64, replace=False))))
        off += n
    idx = np.concatenate(idx)
    put(f, "sample_idx", idx)
    put(f, "grad_samples", flat(grads)[idx])
    put(f, "after_samples", flat([p for _, p in params])[idx])
    put(f, "grad_norm", np.array([float(g.double().norm()) for g in grads], dtype=np.float64))
    put(f, "grad_maxabs", np.array([float(g.abs().max()) for g in grads], dtype=np.float64))
    put(f, "after_maxabs", np.array([float(p.detach().abs().max()) for _, p in params], dtype=np.float64))


def hash_scale(name, p):
    """(scale, offset) of the hashed initial value of parameter `name`: BN gamma 1 +- 0.2, beta
    +- 0.2, the fc layer U(+-1/sqrt(512)), convolutions uniform with the Kaiming fan-out variance."""
    module, kind = name.rsplit(".", 1)
    if module.split(".")[-1].startswith("bn"):
        return (0.2, 1.0) if kind == "weight" else (0.2, 0.0)
    if module == "head.fc":
        return 1.0 / math.sqrt(512.0), 0.0
    fan_out = p.shape[0] * p.shape[2] * p.shape[3]
    return math.sqrt(3.0) * math.sqrt(2.0 / fan_out), 0.0


def make_models():
    torch.manual_seed(3)
    m = LeNet()
    randomize(m)
    x, margin = pick_input(m, (8, 1, 28, 28))
    with open_out("lenet_step.h5") as f:
        f.attrs["model"], f.attrs["width"], f.attrs["kink_margin"] = cstr("lenet"), 0, margin
        train_step(f, m, x, torch.randint(0, 10, (8,)))

    torch.manual_seed(4)
    m = ResNet(width=4)
    randomize(m)
    x, margin = pick_input(m, (4, 3, 32, 32))
    with open_out("resnet18_w4_step.h5") as f:
        f.attrs["model"], f.attrs["width"], f.attrs["kink_margin"] = cstr("resnet18"), 4, margin
        train_step(f, m, x, torch.randint(0, 10, (4,)))

    # Width 64 has 2.2M ReLU inputs: some always lie within float32 rounding of 0 (no input
    # avoids them), so its gradients are compared loosely; see GoldenTest.cpp.
    torch.manual_seed(5)
    m = ResNet(width=64)
    with open_out("resnet18_w64_step.h5") as f:
        f.attrs["model"], f.attrs["width"] = cstr("resnet18"), 64
        train_step(f, m, torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)), sampled=True, hash_seed=12345)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)  # fixed summation order: reruns give identical files
    make_layers()
    make_optim()
    make_lr()
    make_models()
    total = 0
    for n in sorted(os.listdir(OUT)):
        if n.endswith(".h5"):
            s = os.path.getsize(os.path.join(OUT, n))
            total += s
            print("%-24s %8.1f KiB" % (n, s / 1024))
    print("%-24s %8.1f KiB" % ("total", total / 1024))


if __name__ == "__main__":
    main()
