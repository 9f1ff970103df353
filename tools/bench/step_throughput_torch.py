"""PyTorch side of tools/bench/step_throughput: samples/s of one SGD-momentum training step."""
import argparse, json, resource, sys, time, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
import torch_models

p = argparse.ArgumentParser()
p.add_argument("--model", default="lenet")
p.add_argument("--batch", type=int, default=128)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--iters", type=int, default=20)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--device", default="cpu")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(1)
dev = torch.device("cuda" if a.device == "cuda" else "cpu")
if dev.type == "cuda":
    torch.backends.cudnn.benchmark = True
m, shape = torch_models.build(a.model)
m = m.to(dev).train()
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(a.batch, *shape, device=dev)
y = torch.randint(0, 10, (a.batch,), device=dev)
lossf = torch.nn.CrossEntropyLoss()
times = []
for it in range(a.warmup + a.iters):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = lossf(m(x), y)
    loss.backward()
    opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    if it >= a.warmup:
        times.append(time.perf_counter() - t0)
times.sort()
med = times[len(times) // 2]
print(json.dumps({"impl": "pytorch " + torch.__version__, "model": a.model, "batch": a.batch,
                  "threads": a.threads, "samples_per_s": round(a.batch / med, 2),
                  "step_ms": round(med * 1e3, 3),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "params": sum(p.numel() for p in m.parameters())}))
