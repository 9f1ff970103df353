"""PyTorch side of tools/bench/e2e_fmnist: the same LeNet training on Debian's Fashion-MNIST."""
import argparse, gzip, json, os, sys, time
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
import torch_models

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(1)


def idx(name):
    with gzip.open(os.path.join(a.dir, name + ".gz")) as f:
        d = f.read()
    n = int.from_bytes(d[4:8], "big")
    if d[3] == 3:
        return np.frombuffer(d, np.uint8, offset=16).reshape(n, 1, 28, 28).astype(np.float32) / 255
    return np.frombuffer(d, np.uint8, offset=8).astype(np.int64)


xtr, ytr = torch.from_numpy(idx("train-images-idx3-ubyte")), torch.from_numpy(idx("train-labels-idx1-ubyte"))
xte, yte = torch.from_numpy(idx("t10k-images-idx3-ubyte")), torch.from_numpy(idx("t10k-labels-idx1-ubyte"))
m = torch_models.lenet(dropout=0.1)
opt = torch.optim.SGD(m.parameters(), lr=0.03, momentum=0.9)
lossf = torch.nn.CrossEntropyLoss()
t0 = time.perf_counter()
for e in range(a.epochs):
    m.train()
    perm = torch.randperm(len(xtr))
    nb = (len(xtr) + 127) // 128
    for i in range(0, len(xtr), 128):
        # configs/fmnist_lenet.ini: poly annealed per iteration, lr0 (1 - t/T)^2, t = e + b/nb
        for g in opt.param_groups:
            g["lr"] = 0.03 * (1 - (e + i // 128 / nb) / a.epochs) ** 2
        j = perm[i:i + 128]
        opt.zero_grad(set_to_none=True)
        lossf(m(xtr[j]), ytr[j]).backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        acc = sum((m(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item() for i in range(0, len(xte), 1000)) / len(xte)
    print(json.dumps({"epoch": e, "acc": acc, "wall_s": time.perf_counter() - t0}), flush=True)
