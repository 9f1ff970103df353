#!/usr/bin/env python3
"""Bad input to `stagewise train`: each case must exit with status 2, print exactly one line on
stderr naming the problem, and write nothing (no run directory). Usage: bad_input.py STAGEWISE"""
import os, shutil, struct, subprocess, sys, tempfile

exe = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="sw_bad_")
failures = 0
passes = 0


def idx_dir(name, n=20, magic_img=0x803, magic_lbl=0x801, truncate=False, label=3, n_labels=None):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    img = struct.pack(">IIII", magic_img, n, 28, 28) + bytes(n * 784)
    if truncate:
        img = img[: len(img) // 2]
    nl = n if n_labels is None else n_labels
    lbl = struct.pack(">II", magic_lbl, nl) + bytes([label]) * nl
    for split in ("train", "t10k"):
        open(os.path.join(d, f"{split}-images-idx3-ubyte"), "wb").write(img)
        open(os.path.join(d, f"{split}-labels-idx1-ubyte"), "wb").write(lbl)
    return d


def case(title, args, expect_in):
    global failures, passes
    out = os.path.join(tmp, "run_" + str(abs(hash(title))))
    r = subprocess.run([exe, "train", "--out", out] + args, capture_output=True, text=True, timeout=60)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    ok = r.returncode == 2 and len(lines) == 1 and expect_in in lines[0] and not os.path.exists(out)
    print(("ok   " if ok else "FAIL ") + f"{title}: rc={r.returncode} stderr={lines}")
    failures += not ok
    passes += ok


cfg = os.path.join(tmp, "c.ini")
open(cfg, "w").write("[train]\nepochs = 1\n[data]\nname = synthetic\n")
bogus = os.path.join(tmp, "bogus.ini")
open(bogus, "w").write("[optim]\nlearning_rate = 0.1\n")
case("unknown key in file", ["--config", bogus], "optim.learning_rate")
case("unknown key on command line", ["--config", cfg, "optim.bogus=1"], "optim.bogus")
case("negative learning rate", ["--config", cfg, "optim.lr=-0.1"], "optim.lr")
case("bad integer", ["--config", cfg, "train.epochs=three"], "train.epochs")
case("missing config file", ["--config", os.path.join(tmp, "nope.ini")], "nope.ini")
case("truncated IDX", ["--config", cfg, "data.name=mnist", "data.dir=" + idx_dir("trunc", truncate=True)], "trunc")
case("wrong-magic IDX", ["--config", cfg, "data.name=mnist", "data.dir=" + idx_dir("magic", magic_img=0x1234)], "magic")
case("label out of range", ["--config", cfg, "data.name=mnist", "data.dir=" + idx_dir("label", label=42)], "label")
case("image/label count mismatch", ["--config", cfg, "data.name=mnist", "data.dir=" + idx_dir("count", n_labels=7)], "count")
case("empty dataset", ["--config", cfg, "data.name=mnist", "data.dir=" + idx_dir("empty", n=0)], "empty")
notcifar = os.path.join(tmp, "cifar")
os.makedirs(notcifar)
for f in ["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]:
    open(os.path.join(notcifar, f), "wb").write(bytes(3073 * 2 + 17))
case("truncated CIFAR", ["--config", cfg, "data.name=cifar10", "data.dir=" + notcifar], "cifar")
nothdf = os.path.join(tmp, "x.h5")
open(nothdf, "wb").write(b"not hdf5 at all")
case("not an HDF5 file", ["--config", cfg, "data.name=hdf5", "data.train_file=" + nothdf, "data.test_file=" + nothdf], "x.h5")
case("model cannot take input", ["--config", cfg, "model.name=simple_vgg"], "simple_vgg")
if not os.path.exists("/dev/nvidia0"):  # with a GPU, runtime.device=cuda trains
    case("runtime.device=cuda without a usable GPU", ["--config", cfg, "runtime.device=cuda"], "runtime.device")
case("resume without checkpoint", ["--config", cfg, "--resume", os.path.join(tmp, "nothing")], "nothing")
shutil.rmtree(tmp)
print(f"{passes} passed, {failures} failed")
sys.exit(1 if failures else 0)
