"""PyTorch eager baseline for `cargo bench --bench training`: the same MLP
(64 -> 128 ReLU -> 10), batch 32, Adam, cross-entropy, on the CPU with one thread.
Prints `steps_per_second <x>`; exits 3 when PyTorch is not installed."""
import sys
import time

try:
    import torch
except ImportError:
    print("pytorch not installed", file=sys.stderr)
    sys.exit(3)

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
torch.manual_seed(0)
rows, batch = 32 * 3000, 32
x = torch.rand(rows, 64) * 2 - 1
y = torch.randint(0, 10, (rows,))
model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()


def epoch(steps):
    perm = torch.randperm(rows)
    for i in range(steps):
        idx = perm[i * batch:(i + 1) * batch]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return loss.item()


epoch(200)  # warm up
best = 0.0
for _ in range(3):
    t = time.perf_counter()
    epoch(3000)
    best = max(best, 3000 / (time.perf_counter() - t))
print(f"torch {torch.__version__} threads {torch.get_num_threads()}")
print(f"steps_per_second {best:.1f}")
