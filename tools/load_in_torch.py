#!/usr/bin/python3
"""Loads a model exported by `stagewise export` into an equivalent PyTorch nn.Module.

The file (.safetensors or .h5) names the zoo model and holds its config; the module is rebuilt
with the same hyper-parameters (model.width, model.hidden, model.depth, model.batchnorm, the
sample shape and class count), loaded strictly (every exported tensor used, every parameter and
buffer provided except BatchNorm's num_batches_tracked) and put in eval mode.
  --probe FILE.h5  compares the module's float32 eval-mode logits on the probe's `x` with
                   stagewise's own (`logits`): exit 0 when max |diff| / max(1, max |logit|) <= tol,
                   1 otherwise. Without --probe: prints the module and its parameter count.
Bad input (a missing file, an unknown model, unmatched tensor names or shapes) exits 2.
Library use: `from load_in_torch import load; module, metadata = load("model.safetensors")`.
Models: mlp, mlp_bn, lenet, simple_vgg, allcnn, resnet18, resnet34, resnet50, revnet18,
revnet34, vgg16, wrn, wrn16_4, wrn28_10 (the architectures of src/nn/Zoo.cpp).
"""
import argparse
import configparser
import itertools
import json
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

try:
    import h5py
except ImportError:
    sys.exit("load_in_torch.py: needs h5py (Debian: apt install python3-h5py; pip: pip install h5py)")

FORMAT = "stagewise-export/1"
BN_EPS = 1e-5  # BatchNormOpts::eps (src/backend/Backend.h)


class LoadError(Exception):
    """A bad input file or model; the message names the file and the tensor."""


# ---------------------------------------------------------------------------------------------
# Reading the export


def _read_safetensors(path):
    """(name -> float32 array, metadata) of a safetensors file, validated against its header."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise LoadError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise LoadError(f"{path}: header length {n} exceeds the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise LoadError(f"{path}: the safetensors header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise LoadError(f"{path}: the safetensors header is not a JSON object")
    meta = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for name, info in header.items():
        try:
            dtype, shape = info["dtype"], [int(d) for d in info["shape"]]
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise LoadError(f"{path}: tensor {name}: malformed header entry {info!r}") from None
        if dtype != "F32":
            raise LoadError(f"{path}: tensor {name}: dtype {dtype}, expected F32")
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= begin <= end <= len(data) or end - begin != 4 * count:
            raise LoadError(f"{path}: tensor {name}: data_offsets [{begin}, {end}] do not hold shape {shape} "
                            f"in {len(data)} data bytes")
        tensors[name] = np.frombuffer(data, dtype="<f4", count=count, offset=begin).reshape(shape).copy()
    return tensors, meta


def _text(v):
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _read_h5(path):
    """(name -> float32 array, metadata) of an HDF5 export: datasets under /tensors, root attributes."""
    tensors = {}
    with h5py.File(path, "r") as f:
        meta = {k: _text(v) for k, v in f.attrs.items()}
        if "tensors" not in f:
            raise LoadError(f"{path}: no /tensors group")

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                if obj.dtype != np.float32:
                    raise LoadError(f"{path}: tensor {name}: dtype {obj.dtype}, expected float32")
                tensors[name] = obj[()]

        f["tensors"].visititems(visit)
    return tensors, meta


def read_export(path):
    """(name -> float32 numpy array, metadata dict of strings) of an exported file, either format."""
    if not os.path.isfile(path):
        raise LoadError(f"{path}: no such file")
    try:
        tensors, meta = _read_h5(path) if h5py.is_hdf5(path) else _read_safetensors(path)
    except OSError as e:
        raise LoadError(f"{path}: {e}") from None
    if meta.get("format") != FORMAT:
        raise LoadError(f"{path}: metadata format is {meta.get('format')!r}, expected {FORMAT!r}")
    for key in ("model", "config", "sample_shape", "classes"):
        if key not in meta:
            raise LoadError(f"{path}: metadata has no {key!r}")
    return tensors, meta


# ---------------------------------------------------------------------------------------------
# The model spec (src/nn/Zoo.h ModelSpec, keys and defaults of src/config/Options.cpp)


class Spec:
    """The [model] keys of the run's config that shape the network."""

    def __init__(self, name, config_text, origin):
        # Boost's config parser: '#' comments, "key = value" lines, keys are case-sensitive.
        ini = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=("#",),
                                        inline_comment_prefixes=("#",))
        ini.optionxform = str
        try:
            ini.read_string(config_text)
        except configparser.Error as e:
            raise LoadError(f"{origin}: the config metadata does not parse: {e}") from None
        m = ini["model"] if ini.has_section("model") else {}

        def get(key, default, convert):
            value = m.get(key, default).strip()
            try:
                return convert(value)
            except ValueError:
                raise LoadError(f"{origin}: config model.{key} = {value!r} is not valid") from None

        def boolean(v):  # toBool (src/config/Keys.cpp)
            if v in ("true", "1", "yes", "on"):
                return True
            if v in ("false", "0", "no", "off"):
                return False
            raise ValueError(v)

        self.name = name
        self.hidden = get("hidden", "1024,1024", lambda v: [int(s) for s in v.split(",") if s.strip()])
        self.dropout = get("dropout", "-1", float)
        self.input_dropout = get("input_dropout", "-1", float)
        self.batchnorm = get("batchnorm", "true", boolean)
        self.width = get("width", "0", int)
        self.depth = get("depth", "0", int)


def _or_default(v, d):  # orDefault (src/nn/Zoo.cpp): a negative value means the model's default
    return d if v < 0 else v


# ---------------------------------------------------------------------------------------------
# Layers that PyTorch lacks, with stagewise's semantics


def _sequential(items):
    """nn.Sequential of stagewise (name, layer) pairs, in order. PyTorch module names cannot hold
    dots, so consecutive names "a.x", "a.y" nest as child "a" with children "x", "y": the
    state_dict keys equal stagewise's dotted names (block "layer1.0" -> layer1 -> 0)."""
    out = OrderedDict()
    for head, group in itertools.groupby(items, key=lambda it: it[0].split(".", 1)[0]):
        group = list(group)
        assert head not in out, f"layer name {head} used twice"
        if len(group) == 1 and "." not in group[0][0]:
            out[head] = group[0][1]
        else:
            out[head] = _sequential([(n.split(".", 1)[1], layer) for n, layer in group])
    return nn.Sequential(out)


class Residual(nn.Module):
    """Residual (src/nn/Sequential.cpp): post(main(x) + shortcut(x)), post ReLU or identity,
    shortcut None = identity. Residual::setName gives main's layers the block's own name, so they
    are children of this module; the shortcut is the child `shortcut_name`."""

    def __init__(self, main, shortcut, relu, shortcut_name="shortcut"):
        super().__init__()
        for name, layer in main:
            self.add_module(name, layer)
        self.main_names = [name for name, _ in main]
        self.shortcut_name = shortcut_name if shortcut is not None else None
        if shortcut is not None:
            self.add_module(shortcut_name, shortcut)
        self.post_relu = relu

    def forward(self, x):
        h = x
        for name in self.main_names:
            h = getattr(self, name)(h)
        y = h + (getattr(self, self.shortcut_name)(x) if self.shortcut_name else x)
        return torch.relu(y) if self.post_relu else y


def _halves(x):
    """A RevNet activation pair [n, 2C, h, w]: channels [0, C) = x, [C, 2C) = x~ (Reversible.h)."""
    c = x.shape[1] // 2
    return x[:, :c], x[:, c:]


class RevCoupling(nn.Module):
    """RevCoupling (src/nn/Reversible.cpp, CpuBackend::coupling): y = x~ + F(x), y~ = x."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, pair):
        x, xt = _halves(pair)
        return torch.cat([xt + self.f(x), x], dim=1)


class RevDownsample(nn.Module):
    """RevDownsample (src/nn/Reversible.cpp): h = A(x), y = B(h) + S(x~), output (y, h)."""

    def __init__(self, a, b, shortcut):
        super().__init__()
        self.a, self.b, self.shortcut = a, b, shortcut

    def forward(self, pair):
        x, xt = _halves(pair)
        h = self.a(x)
        return torch.cat([self.b(h) + self.shortcut(xt), h], dim=1)


def _conv(cin, cout, k, stride=1, pad=0, bias=True):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=bias)


def _bn2d(c):
    return nn.BatchNorm2d(c, eps=BN_EPS)


def _gap():
    """AvgPool2d(0, 0): a global average pool to 1x1 (src/nn/Pool.cpp)."""
    return nn.AdaptiveAvgPool2d(1)


def _dropout(p):
    """Dropout layers exist where Zoo.cpp adds them (p > 0); they are the identity in eval."""
    return [("dropout", nn.Dropout(p))] if p > 0 else []


def _blocks(blocks):
    """The model: stagewise blocks (name, [(layer name, layer), ...]) run in order."""
    return _sequential([(name, _sequential(layers)) for name, layers in blocks])


def _feature_count(blocks, sample):
    """Per-sample output size of `blocks` on input `sample` (Model::blockOutputShape)."""
    with torch.no_grad():
        return _blocks(blocks).eval()(torch.zeros(1, *sample)).numel()


# ---------------------------------------------------------------------------------------------
# The zoo (src/nn/Zoo.cpp); each builder mirrors its C++ namesake's layer order and names


def build_mlp(s, sample, classes):
    blocks, cin = [], int(np.prod(sample))
    for i, h in enumerate(s.hidden):
        layers = [("flatten", nn.Flatten())] if i == 0 else []
        layers.append(("linear", nn.Linear(cin, h)))
        if s.batchnorm and s.name == "mlp_bn":
            layers.append(("bn", nn.BatchNorm1d(h, eps=BN_EPS)))
        layers += [("relu", nn.ReLU())] + _dropout(_or_default(s.dropout, 0.0))
        blocks.append((f"fc{i + 1}", layers))
        cin = h
    head = [] if s.hidden else [("flatten", nn.Flatten())]
    blocks.append(("head", head + [("linear", nn.Linear(cin, classes))]))
    return _blocks(blocks)


def build_lenet(s, sample, classes):
    p = _or_default(s.dropout, 0.25)
    c1 = s.width if s.width > 0 else 20
    c2, f = c1 * 5 // 2, 500

    def conv_block(cin, cout, pool):
        layers = [("conv", _conv(cin, cout, 5))]
        if s.batchnorm:
            layers.append(("bn", _bn2d(cout)))
        return layers + [("relu", nn.ReLU()), ("pool", nn.MaxPool2d(pool, pool))] + _dropout(p)

    blocks = [("conv1", conv_block(sample[0], c1, 3)), ("conv2", conv_block(c1, c2, 2))]
    flat = _feature_count(blocks, sample)
    fc = [("flatten", nn.Flatten()), ("linear", nn.Linear(flat, f))]
    if s.batchnorm:
        fc.append(("bn", nn.BatchNorm1d(f, eps=BN_EPS)))
    blocks += [("fc1", fc + [("relu", nn.ReLU())] + _dropout(p)), ("head", [("linear", nn.Linear(f, classes))])]
    return _blocks(blocks)


def build_simple_vgg(s, sample, classes):
    ch = [128, 128, 256, 256, 512]
    if s.width > 0:
        ch = [c * s.width // 128 for c in ch]
    if s.depth > 0:
        ch = ch[:s.depth]
    scale = 2 ** len(ch)
    blocks, cin = [], sample[0]
    for k, c in enumerate(ch):
        blocks.append((f"conv{k}", [("conv", _conv(cin, c, 3, pad=1)), ("elu", nn.ELU(1.0)),
                                    ("pool", nn.MaxPool2d(2, 2))]))
        cin = c
    flat = cin * (sample[1] // scale) * (sample[2] // scale)
    blocks.append(("head", [("flatten", nn.Flatten()), ("linear", nn.Linear(flat, classes))]))
    return _blocks(blocks)


def build_allcnn(s, sample, classes):
    c1 = s.width if s.width > 0 else 96
    c2 = 2 * c1
    d, d0 = _or_default(s.dropout, 0.5), _or_default(s.input_dropout, 0.2)

    def unit(name, cin, cout, k, stride):  # the C++ lambda B: "bN.conv", "bN.bn", "bN.relu"
        return [(f"{name}.conv", _conv(cin, cout, k, stride, 1 if k == 3 else 0)),
                (f"{name}.bn", _bn2d(cout)), (f"{name}.relu", nn.ReLU())]

    stage1 = ([("dropout_in", nn.Dropout(d0))] if d0 > 0 else []) + unit("b1", sample[0], c1, 3, 1) + \
        unit("b2", c1, c1, 3, 1) + unit("b3", c1, c1, 3, 2)
    stage2 = _dropout(d) + unit("b4", c1, c2, 3, 1) + unit("b5", c2, c2, 3, 1) + unit("b6", c2, c2, 3, 2)
    stage3 = _dropout(d) + unit("b7", c2, c2, 3, 1) + unit("b8", c2, c2, 3, 1) + unit("b9", c2, classes, 1, 1)
    return _blocks([("stage1", stage1), ("stage2", stage2), ("stage3", stage3),
                    ("head", [("gap", _gap()), ("flatten", nn.Flatten())])])


def _torchvision_block(cin, cout, stride, main):
    """A ResNet block under torchvision's names: main layers conv1, bn1, ..., the projection
    shortcut (1x1(s)-BN when the shape changes, Zoo.cpp projection) as downsample.0/.1, ReLU after
    the sum. The exporter renames stagewise's layerG.B.block.* to these (torchName)."""
    shortcut = None
    if stride != 1 or cin != cout:
        shortcut = _sequential([("0", _conv(cin, cout, 1, stride, bias=False)), ("1", _bn2d(cout))])
    return Residual(main, shortcut, relu=True, shortcut_name="downsample")


def _basic_block(cin, cout, stride):  # basicBlock (Zoo.cpp)
    return _torchvision_block(cin, cout, stride, [
        ("conv1", _conv(cin, cout, 3, stride, 1, bias=False)), ("bn1", _bn2d(cout)), ("relu", nn.ReLU()),
        ("conv2", _conv(cout, cout, 3, 1, 1, bias=False)), ("bn2", _bn2d(cout))])


def _bottleneck(cin, w, stride):  # bottleneck (Zoo.cpp): ResNet v1.5, the stride on the 3x3
    return _torchvision_block(cin, 4 * w, stride, [
        ("conv1", _conv(cin, w, 1, bias=False)), ("bn1", _bn2d(w)), ("relu1", nn.ReLU()),
        ("conv2", _conv(w, w, 3, stride, 1, bias=False)), ("bn2", _bn2d(w)), ("relu2", nn.ReLU()),
        ("conv3", _conv(w, 4 * w, 1, bias=False)), ("bn3", _bn2d(4 * w))])


def _build_resnet_family(s, sample, classes, layers, bottleneck):
    """buildResnet / buildResnet50 under torchvision's names (conv1, bn1, layerG.B, fc). The stem
    does not depend on the input size: resnet18/34 always take the CIFAR stem (conv3x3/1 pad 1,
    BN, ReLU, no max-pool), resnet50 always the ImageNet one (conv7x7/2 pad 3, BN, ReLU,
    max-pool 3x3/2 pad 1)."""
    w = s.width if s.width > 0 else 64
    if bottleneck:
        items = [("conv1", _conv(sample[0], w, 7, 2, 3, bias=False)), ("bn1", _bn2d(w)), ("relu", nn.ReLU()),
                 ("maxpool", nn.MaxPool2d(3, 2, 1))]
    else:
        items = [("conv1", _conv(sample[0], w, 3, 1, 1, bias=False)), ("bn1", _bn2d(w)), ("relu", nn.ReLU())]
    cin = w
    for g, n in enumerate(layers):
        for b in range(n):
            stride = 2 if g > 0 and b == 0 else 1
            if bottleneck:
                items.append((f"layer{g + 1}.{b}", _bottleneck(cin, w << g, stride)))
                cin = 4 * (w << g)
            else:
                items.append((f"layer{g + 1}.{b}", _basic_block(cin, w << g, stride)))
                cin = w << g
    items += [("avgpool", _gap()), ("flatten", nn.Flatten()), ("fc", nn.Linear(cin, classes))]
    return _sequential(items)


def _pool_head(cin, classes):  # addPoolHead (Zoo.cpp)
    return ("head", [("gap", _gap()), ("flatten", nn.Flatten()), ("fc", nn.Linear(cin, classes))])


def _conv_bn_relu(cin, cout, k, stride, relu):  # convBnRelu (Zoo.cpp): conv with bias, pad k / 2
    layers = [("conv", _conv(cin, cout, k, stride, k // 2)), ("bn", _bn2d(cout))]
    return _sequential(layers + ([("relu", nn.ReLU())] if relu else []))


def _build_revnet(s, sample, classes, layers):
    """buildRevnet: per-stream width w, 2w, 4w, 8w; the stem emits both streams (2w channels);
    a group's first block is the non-reversible RevDownsample, the others couplings with
    F = two convBnRelu; the head pools the concatenated streams."""
    w = s.width if s.width > 0 else 64
    blocks = [("stem", [("conv", _conv_bn_relu(sample[0], 2 * w, 3, 1, True))])]
    c = w
    for g, n in enumerate(layers):
        for b in range(n):
            name = f"layer{g + 1}.{b}"
            if g > 0 and b == 0:
                down = RevDownsample(_conv_bn_relu(c, 2 * c, 3, 2, True), _conv_bn_relu(2 * c, 2 * c, 3, 1, True),
                                     _conv_bn_relu(c, 2 * c, 1, 2, False))
                blocks.append((name, [("down", down)]))
                c *= 2
            else:
                f = _sequential([("1", _conv_bn_relu(c, c, 3, 1, True)), ("2", _conv_bn_relu(c, c, 3, 1, True))])
                blocks.append((name, [("rev", RevCoupling(f))]))
    blocks.append(_pool_head(2 * c, classes))
    return _blocks(blocks)


def build_vgg16(s, sample, classes):
    w = s.width if s.width > 0 else 64
    d = s.dropout if s.dropout >= 0 else 0.5
    ch = [w, w, 2 * w, 2 * w, 4 * w, 4 * w, 4 * w, 8 * w, 8 * w, 8 * w, 8 * w, 8 * w, 8 * w]
    blocks, cin = [], sample[0]
    for i, c in enumerate(ch):
        layers = [("conv", _conv(cin, c, 3, 1, 1)), ("relu", nn.ReLU())]
        if i in (1, 3, 6, 9, 12):
            layers.append(("pool", nn.MaxPool2d(2, 2)))
        if i == 12:
            layers += [("avgpool", nn.AdaptiveAvgPool2d((7, 7))), ("flatten", nn.Flatten())]
        blocks.append((f"conv{i}", layers))
        cin = c
    fc = 64 * w
    blocks += [("fc1", [("fc", nn.Linear(cin * 49, fc)), ("relu", nn.ReLU())] + _dropout(d)),
               ("fc2", [("fc", nn.Linear(fc, fc)), ("relu", nn.ReLU())] + _dropout(d)),
               ("fc3", [("fc", nn.Linear(fc, classes))])]
    return _blocks(blocks)


def _build_wrn(s, sample, classes, depth, k):
    """buildWrn: pre-activation blocks, bias-free convs, the shortcut a bare 1x1 conv of the RAW
    block input when the width changes (Parle's variant), no ReLU after the sum."""
    p = _or_default(s.dropout, 0.25)
    blocks, cin = [("stem", [("conv", _conv(sample[0], 16, 3, 1, 1, bias=False))])], 16
    for g in range(3):
        w = (16 << g) * k
        for b in range((depth - 4) // 6):
            stride = 2 if g > 0 and b == 0 else 1
            main = [("bn1", _bn2d(cin)), ("relu1", nn.ReLU()), ("conv1", _conv(cin, w, 3, stride, 1, bias=False)),
                    ("bn2", _bn2d(w)), ("relu2", nn.ReLU())] + _dropout(p) + \
                   [("conv2", _conv(w, w, 3, 1, 1, bias=False))]
            shortcut = _conv(cin, w, 1, stride, 0, bias=False) if cin != w else None
            blocks.append((f"group{g + 1}.{b}", [("block", Residual(main, shortcut, relu=False))]))
            cin = w
    blocks.append(("head", [("bn", _bn2d(cin)), ("relu", nn.ReLU()), ("gap", _gap()), ("flatten", nn.Flatten()),
                            ("fc", nn.Linear(cin, classes))]))
    return _blocks(blocks)


BUILDERS = {
    "mlp": build_mlp,
    "mlp_bn": build_mlp,
    "lenet": build_lenet,
    "simple_vgg": build_simple_vgg,
    "allcnn": build_allcnn,
    "resnet18": lambda s, x, c: _build_resnet_family(s, x, c, [2, 2, 2, 2], bottleneck=False),
    "resnet34": lambda s, x, c: _build_resnet_family(s, x, c, [3, 4, 6, 3], bottleneck=False),
    "resnet50": lambda s, x, c: _build_resnet_family(s, x, c, [3, 4, 6, 3], bottleneck=True),
    "revnet18": lambda s, x, c: _build_revnet(s, x, c, [2, 2, 2, 2]),
    "revnet34": lambda s, x, c: _build_revnet(s, x, c, [3, 4, 6, 3]),
    "vgg16": build_vgg16,
    "wrn": lambda s, x, c: _build_wrn(s, x, c, s.depth if s.depth > 0 else 28, s.width if s.width > 0 else 10),
    "wrn16_4": lambda s, x, c: _build_wrn(s, x, c, 16, 4),
    "wrn28_10": lambda s, x, c: _build_wrn(s, x, c, 28, 10),
}


def build_module(name, config_text, sample, classes, origin="model"):
    """The PyTorch module of zoo model `name` (its config's [model] keys), freshly initialised."""
    if name not in BUILDERS:
        raise LoadError(f"{origin}: unknown model {name!r} (supported: {', '.join(BUILDERS)})")
    if name not in ("mlp", "mlp_bn") and len(sample) != 3:
        raise LoadError(f"{origin}: model {name} needs image input (C,H,W), got sample_shape {sample}")
    return BUILDERS[name](Spec(name, config_text, origin), sample, classes)


# ---------------------------------------------------------------------------------------------
# Loading


def _check_names(path, model, module_state, tensors):
    """Every exported tensor must be a module tensor of the same shape, and every module tensor
    exported, except BatchNorm's num_batches_tracked (not written by the export)."""
    wanted = {k: tuple(v.shape) for k, v in module_state.items() if not k.endswith(".num_batches_tracked")}
    unused = sorted(set(tensors) - set(wanted))
    missing = sorted(set(wanted) - set(tensors))
    if unused or missing:
        parts = []
        if unused:
            parts.append(f"tensors not in the {model} module: {', '.join(unused)}")
        if missing:
            parts.append(f"{model} module tensors missing from the file: {', '.join(missing)}")
        raise LoadError(f"{path}: " + "; ".join(parts))
    for name, shape in wanted.items():
        if tuple(tensors[name].shape) != shape:
            raise LoadError(f"{path}: tensor {name} has shape {list(tensors[name].shape)}, "
                            f"the {model} module expects {list(shape)}")


def load(path):
    """(eval-mode torch.nn.Module, metadata dict) of a file written by `stagewise export`.
    Raises LoadError for a bad file, an unknown model or tensors that do not match the model."""
    tensors, meta = read_export(path)
    try:
        sample = [int(d) for d in meta["sample_shape"].split(",")]
        classes = int(meta["classes"])
    except ValueError:
        raise LoadError(f"{path}: metadata sample_shape {meta['sample_shape']!r} or classes "
                        f"{meta['classes']!r} is not a list of integers") from None
    module = build_module(meta["model"], meta["config"], sample, classes, origin=path)
    state = module.state_dict()
    _check_names(path, meta["model"], state, tensors)
    for name, value in tensors.items():
        state[name] = torch.from_numpy(value)
    module.load_state_dict(state, strict=True)
    return module.eval(), meta


def _read_probe(path, sample, classes):
    if not os.path.isfile(path):
        raise LoadError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            for key in ("x", "logits"):
                if key not in f:
                    raise LoadError(f"{path}: no dataset /{key}")
            x, logits = f["x"][()], f["logits"][()]
    except OSError as e:
        raise LoadError(f"{path}: {e}") from None
    if x.ndim < 1 or list(x.shape[1:]) != sample:
        raise LoadError(f"{path}: x has shape {list(x.shape)}, expected [N, {','.join(map(str, sample))}]")
    if list(logits.shape) != [x.shape[0], classes]:
        raise LoadError(f"{path}: logits has shape {list(logits.shape)}, expected [{x.shape[0]}, {classes}]")
    return x.astype(np.float32), logits.astype(np.float32)


def main(argv=None):
    p = argparse.ArgumentParser(prog="load_in_torch.py", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL_FILE", help="a .safetensors or .h5 file of stagewise export")
    p.add_argument("--probe", metavar="PROBE.h5", help="x and logits written by stagewise export --probe")
    p.add_argument("--tol", type=float, default=1e-5, help="largest relative logits difference accepted (1e-5)")
    a = p.parse_args(argv)
    try:
        module, meta = load(a.model)
        if a.probe is None:
            print(module)
            print(f"{meta['model']} from {a.model} (step {meta.get('step', '?')}, algo {meta.get('algo', '?')}): "
                  f"{sum(t.numel() for t in module.parameters())} parameters")
            return 0
        sample = [int(d) for d in meta["sample_shape"].split(",")]
        x, logits = _read_probe(a.probe, sample, int(meta["classes"]))
    except LoadError as e:
        print(f"load_in_torch.py: error: {e}", file=sys.stderr)
        return 2
    with torch.no_grad():
        ours = module(torch.from_numpy(x)).numpy()
    scale = max(1.0, float(np.abs(logits).max()))
    diff = float(np.abs(ours - logits).max()) / scale
    ok = diff <= a.tol
    print(f"max |logits diff| = {diff:.3e} (relative to max(1, max |logit|) = {scale:.4g}; {x.shape[0]} samples, "
          f"{meta['model']}): {'ok' if ok else 'FAILED'}, tol {a.tol:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
