#!/usr/bin/python3
"""CTest (label tools): runs tools/convert_h5.py on small generated IDX, CIFAR-10 binary, CIFAR
pickle and ImageNet32 pickle/npz inputs and checks the HDF5 it writes is the layout loadHdf5 reads
(uint8 images [N,C,H,W], labels [N], root attribute classes). Skips (exit 0) without h5py.
Usage: test_convert_h5.py [path/to/convert_h5.py]
"""
import gzip
import os
import pickle
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"SKIP: {e} (install python3-h5py and python3-numpy to test tools/convert_h5.py)")
    sys.exit(0)

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "tools", "convert_h5.py")


def run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, timeout=50)


def idx(magic_dims, dims, body):
    head = bytes([0, 0, 0x08, magic_dims]) + b"".join(int(d).to_bytes(4, "big") for d in dims)
    return head + bytes(body)


def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)


def read(path):
    with h5py.File(path, "r") as f:
        return f["images"][:], f["labels"][:], int(f.attrs["classes"]), f["images"].dtype


def main():
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="sw_convert_h5_") as d:
        p = lambda name: os.path.join(d, name)

        # IDX: gzipped images, raw labels.
        images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
        labels = np.array([3, 0, 9, 1, 2], dtype=np.uint8)
        with gzip.open(p("img.gz"), "wb") as f:
            f.write(idx(3, images.shape, images.tobytes()))
        with open(p("lab"), "wb") as f:
            f.write(idx(1, labels.shape, labels.tobytes()))
        r = run("idx", p("img.gz"), p("lab"), "--out", p("idx.h5"))
        check(r.returncode == 0, f"idx conversion failed: {r.stderr}")
        x, y, classes, dtype = read(p("idx.h5"))
        check(dtype == np.uint8 and x.shape == (5, 1, 4, 3), f"idx images {dtype} {x.shape}")
        check((x[:, 0] == images).all() and (y == labels).all() and classes == 10, "idx contents")
        check(not os.path.exists(p("idx.h5.tmp")), "idx: temporary file left behind")

        # Damaged input: clear error naming the file, no output.
        with open(p("bad"), "wb") as f:
            f.write(idx(3, (5, 4, 3), images.tobytes()[:-7]))
        r = run("idx", p("bad"), p("lab"), "--out", p("bad.h5"))
        check(r.returncode == 2 and p("bad") in r.stderr and "truncated" in r.stderr, f"bad idx: {r.stderr}")
        check(not os.path.exists(p("bad.h5")) and not os.path.exists(p("bad.h5.tmp")), "bad idx left a file")
        r = run("idx", p("lab"), p("img.gz"), "--out", p("swap.h5"))
        check(r.returncode == 2 and "swapped" in r.stderr, f"swapped idx: {r.stderr}")

        # CIFAR-10 binary: two batches.
        cif = rng.integers(0, 256, size=(3, 3 * 32 * 32), dtype=np.uint8)
        cl = np.array([7, 2, 5], dtype=np.uint8)
        with open(p("b1.bin"), "wb") as f:
            f.write(np.concatenate([cl[:2, None], cif[:2]], axis=1).tobytes())
        with open(p("b2.bin"), "wb") as f:
            f.write(np.concatenate([cl[2:, None], cif[2:]], axis=1).tobytes())
        r = run("cifar10", p("b1.bin"), p("b2.bin"), "--out", p("c10.h5"))
        check(r.returncode == 0, f"cifar10 failed: {r.stderr}")
        x, y, classes, _ = read(p("c10.h5"))
        check(x.shape == (3, 3, 32, 32) and (x.reshape(3, -1) == cif).all() and (y == cl).all() and classes == 10,
              "cifar10 contents")
        with open(p("short.bin"), "wb") as f:
            f.write(b"\0" * 3000)
        r = run("cifar10", p("short.bin"), "--out", p("s.h5"))
        check(r.returncode == 2 and p("short.bin") in r.stderr, f"short cifar: {r.stderr}")

        # CIFAR-100 python pickle (bytes keys, as the Python 2 originals load).
        with open(p("train"), "wb") as f:
            pickle.dump({b"data": cif, b"fine_labels": [99, 0, 42], b"coarse_labels": [19, 0, 3]}, f)
        r = run("cifar-pickle", p("train"), "--out", p("c100.h5"))
        check(r.returncode == 0, f"cifar-pickle failed: {r.stderr}")
        x, y, classes, _ = read(p("c100.h5"))
        check(x.shape == (3, 3, 32, 32) and list(y) == [99, 0, 42] and classes == 100, "cifar-100 contents")
        r = run("cifar-pickle", p("train"), "--label-key", "coarse", "--out", p("c20.h5"))
        check(r.returncode == 0 and list(read(p("c20.h5"))[1]) == [19, 0, 3], "cifar-100 coarse")

        # ImageNet32: pickle and npz batches, 1-based labels.
        with open(p("train_data_batch_1"), "wb") as f:
            pickle.dump({"data": cif[:2], "labels": [1, 1000], "mean": np.zeros(3072)}, f)
        np.savez(p("val_data.npz"), data=cif[2:], labels=np.array([500]))
        r = run("imagenet32", p("train_data_batch_1"), p("val_data.npz"), "--out", p("in32.h5"))
        check(r.returncode == 0, f"imagenet32 failed: {r.stderr}")
        x, y, classes, _ = read(p("in32.h5"))
        check(x.shape == (3, 3, 32, 32) and list(y) == [0, 999, 499] and classes == 1000, "imagenet32 contents")
        check((x.reshape(3, -1) == cif).all(), "imagenet32 pixels (CHW rows)")
        with open(p("notpickle"), "wb") as f:
            f.write(b"hello")
        r = run("imagenet32", p("notpickle"), "--out", p("np.h5"))
        check(r.returncode == 2 and p("notpickle") in r.stderr, f"not a pickle: {r.stderr}")
    print("convert_h5.py: all checks passed")


if __name__ == "__main__":
    main()
