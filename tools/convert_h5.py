#!/usr/bin/python3
"""Converts image classification data sets to stagewise's HDF5 format (data.name = hdf5).

Output: uint8 `images` [N, C, H, W], int64 `labels` [N] (0-based), root attribute `classes`.
Inputs:
  idx          IMAGES LABELS [IMAGES LABELS ...]  MNIST-style IDX files, gzipped or raw
  cifar10      data_batch_1.bin ...               CIFAR-10 binary batches
  cifar-pickle data_batch_1 ... | train | test    CIFAR-10/100 python pickles
  imagenet32   train_data_batch_1 ... | val_data  downsampled ImageNet pickles or .npz (1-based labels)
The file is written to OUT.tmp and renamed to OUT when complete, so OUT is never half-written.
Example: convert_h5.py imagenet32 Imagenet32_train/train_data_batch_{1..10} --out imagenet32_train.h5
"""
import argparse
import gzip
import os
import pickle
import sys

import numpy as np

try:
    import h5py
except ImportError:  # keep the message actionable: the tool is otherwise dependency-free
    sys.exit("convert_h5.py: needs h5py (Debian: apt install python3-h5py; pip: pip install h5py)")


class InputError(Exception):
    """A bad input file; the message names the file."""


class Writer:
    """Appends batches to resizable datasets, so ImageNet32 (3.9 GB) never sits in memory at once."""

    def __init__(self, path):
        self.path = path
        self.file = h5py.File(path, "w")
        self.images = None
        self.labels = None
        self.n = 0

    def append(self, images, labels, source):
        if images.ndim != 4 or images.dtype != np.uint8:
            raise InputError(f"{source}: images must be uint8 [N,C,H,W], got {images.dtype} {images.shape}")
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(labels) != len(images):
            raise InputError(f"{source}: {len(images)} images but {len(labels)} labels")
        if len(labels) and labels.min() < 0:
            raise InputError(f"{source}: negative label {labels.min()}")
        if self.images is None:
            sample = images.shape[1:]
            # ~1-4 MB chunks: large enough for fast sequential reads, small enough to append cheaply.
            rows = max(1, min(1024, (1 << 22) // max(1, int(np.prod(sample)))))
            self.images = self.file.create_dataset(
                "images", shape=(0,) + sample, maxshape=(None,) + sample, dtype=np.uint8,
                chunks=(rows,) + sample)
            self.labels = self.file.create_dataset(
                "labels", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(max(rows, 4096),))
        elif images.shape[1:] != self.images.shape[1:]:
            raise InputError(f"{source}: sample shape {list(images.shape[1:])} differs from earlier inputs "
                             f"{list(self.images.shape[1:])}")
        m = self.n + len(images)
        self.images.resize(m, axis=0)
        self.labels.resize(m, axis=0)
        self.images[self.n:m] = images
        self.labels[self.n:m] = labels
        self.n = m

    def finish(self, classes, description):
        if self.n == 0:
            raise InputError("no samples in the inputs")
        top = int(self.labels[:].max())
        if classes is None:
            classes = top + 1
        if top >= classes:
            raise InputError(f"label {top} is out of range for {classes} classes (use --classes)")
        self.file.attrs["classes"] = np.int64(classes)
        self.file.attrs["source"] = description
        self.shape = list(self.images.shape)
        self.file.close()
        return classes


def read_maybe_gz(path):
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})")
    except EOFError:
        raise InputError(f"{path}: truncated gzip stream")


def read_idx(path, want_dims):
    buf = read_maybe_gz(path)
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise InputError(f"{path}: not an IDX file (bad magic)")
    if buf[2] != 0x08:
        raise InputError(f"{path}: IDX element type 0x{buf[2]:02x}, only unsigned bytes (0x08) are supported")
    ndim = buf[3]
    if ndim != want_dims:
        kind = "images" if want_dims == 3 else "labels"
        raise InputError(f"{path}: IDX file has {ndim} dimensions, expected {want_dims} for {kind} "
                         "(images and labels swapped?)")
    if len(buf) < 4 + 4 * ndim:
        raise InputError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim)
    need = int(np.prod(dims))
    if body.size < need:
        raise InputError(f"{path}: truncated IDX file: {body.size} data bytes, header promises {need}")
    return body[:need].reshape(dims)


def convert_idx(inputs, w):
    if len(inputs) % 2:
        raise InputError("idx needs pairs of files: IMAGES LABELS [IMAGES LABELS ...]")
    for img, lab in zip(inputs[0::2], inputs[1::2]):
        images = read_idx(img, 3)
        labels = read_idx(lab, 1)
        if len(images) != len(labels):
            raise InputError(f"{img} has {len(images)} images but {lab} has {len(labels)} labels")
        w.append(images[:, None, :, :], labels, img)
    # The MNIST family has at least 10 classes; a split that lacks the top digit must still say 10.
    return max(10, int(w.labels[:].max()) + 1) if w.n else None


def convert_cifar10(inputs, w):
    record = 1 + 3 * 32 * 32
    for path in inputs:
        buf = read_maybe_gz(path)
        if len(buf) == 0 or len(buf) % record:
            raise InputError(f"{path}: {len(buf)} bytes is not a multiple of the 3073-byte CIFAR-10 record "
                             "(truncated, or a python/CIFAR-100 file? use cifar-pickle)")
        rows = np.frombuffer(buf, dtype=np.uint8).reshape(-1, record)
        labels = rows[:, 0]
        if labels.max() >= 10:
            raise InputError(f"{path}: label {labels.max()} is not a CIFAR-10 label")
        w.append(rows[:, 1:].reshape(-1, 3, 32, 32), labels, path)
    return 10


def load_pickle(path):
    try:
        with open(path, "rb") as f:
            # latin1 reads Python 2 pickles (CIFAR) with their numpy arrays intact.
            d = pickle.load(f, encoding="latin1")
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})")
    except Exception as e:  # unpickling raises many types; all mean "not the expected file"
        raise InputError(f"{path}: not a python pickle batch ({type(e).__name__}: {e})")
    if not isinstance(d, dict):
        raise InputError(f"{path}: expected a pickled dict, found {type(d).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}


def chw_rows(data, path):
    """[N, C*S*S] uint8 rows in CHW order (CIFAR, ImageNet32/64) -> [N, 3, S, S]."""
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] % 3:
        raise InputError(f"{path}: 'data' has shape {list(data.shape)}, expected [N, 3*S*S]")
    side = int(round((data.shape[1] // 3) ** 0.5))
    if 3 * side * side != data.shape[1]:
        raise InputError(f"{path}: rows of {data.shape[1]} values are not 3 square channels")
    if data.dtype != np.uint8:
        if data.size and (data.min() < 0 or data.max() > 255):
            raise InputError(f"{path}: pixel values outside 0..255")
        data = data.astype(np.uint8)
    return data.reshape(-1, 3, side, side)


def convert_cifar_pickle(inputs, w, label_key):
    classes = None
    for path in inputs:
        d = load_pickle(path)
        if "data" not in d:
            raise InputError(f"{path}: no 'data' entry (keys: {sorted(d)})")
        if "labels" in d:  # CIFAR-10
            key, n = "labels", 10
        elif f"{label_key}_labels" in d:  # CIFAR-100
            key, n = f"{label_key}_labels", 100 if label_key == "fine" else 20
        else:
            raise InputError(f"{path}: no 'labels' or '{label_key}_labels' entry (keys: {sorted(d)})")
        if classes not in (None, n):
            raise InputError(f"{path}: mixes CIFAR-10 and CIFAR-100 batches")
        classes = n
        w.append(chw_rows(d["data"], path), d[key], path)
    return classes


def convert_imagenet32(inputs, w):
    for path in inputs:
        if path.endswith(".npz"):
            try:
                with np.load(path) as z:
                    d = {k: z[k] for k in z.files}
            except (OSError, ValueError) as e:
                raise InputError(f"{path}: cannot read .npz ({e})")
        else:
            d = load_pickle(path)
        for key in ("data", "labels"):
            if key not in d:
                raise InputError(f"{path}: no '{key}' entry (keys: {sorted(d)})")
        labels = np.asarray(d["labels"], dtype=np.int64).reshape(-1)
        # Downsampled ImageNet numbers classes from 1.
        if labels.size and labels.min() < 1:
            raise InputError(f"{path}: label {labels.min()} < 1, but downsampled ImageNet labels are 1-based")
        w.append(chw_rows(d["data"], path), labels - 1, path)
    return 1000


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("format", choices=["idx", "cifar10", "cifar-pickle", "imagenet32"])
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--classes", type=int, help="class count (default: from the format; idx: max(10, max label + 1))")
    p.add_argument("--label-key", choices=["fine", "coarse"], default="fine",
                   help="CIFAR-100 pickles: fine (100) or coarse (20) labels")
    a = p.parse_args(argv)

    tmp = a.out + ".tmp"
    w = None
    try:
        w = Writer(tmp)
        if a.format == "idx":
            classes = convert_idx(a.inputs, w)
        elif a.format == "cifar10":
            classes = convert_cifar10(a.inputs, w)
        elif a.format == "cifar-pickle":
            classes = convert_cifar_pickle(a.inputs, w, a.label_key)
        else:
            classes = convert_imagenet32(a.inputs, w)
        classes = w.finish(a.classes if a.classes is not None else classes,
                           f"{a.format}: " + " ".join(os.path.basename(i) for i in a.inputs))
        os.replace(tmp, a.out)
    except (InputError, OSError) as e:
        if w is not None and w.file:
            w.file.close()
        if os.path.exists(tmp):
            os.remove(tmp)
        print(f"convert_h5.py: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {a.out}: {w.shape[0]} samples of {w.shape[1:]}, {classes} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
