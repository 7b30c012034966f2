"""The PyTorch contender: a plain eager training loop of the same MLP VAE and recipe.

784-400-20 (ReLU), Bernoulli likelihood from logits, dynamic binarization, closed-form KL,
Adam 1e-3, batch 128, 60,000 Fashion-MNIST images held in memory as a tensor. Prints one JSON
line: seconds per epoch. Run by bench/train_speed.py in its own process.
"""

import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(784, 400)
        self.loc = nn.Linear(400, 20)
        self.raw_scale = nn.Linear(400, 20)
        self.dec = nn.Linear(20, 400)
        self.out = nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.enc(x))
        loc, scale = self.loc(h), F.softplus(self.raw_scale(h)) + 1e-3
        z = loc + scale * torch.randn_like(loc)  # reparameterization
        return self.out(F.relu(self.dec(z))), loc, scale


def main():
    images, epochs = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    x = torch.from_numpy(np.load(images)).reshape(-1, 784)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = 128
    times = []
    for _ in range(epochs):
        order = torch.randperm(len(x))
        t0 = time.perf_counter()
        for i in range(0, len(x) - batch + 1, batch):
            xb = torch.bernoulli(x[order[i:i + batch]])
            logits, loc, scale = model(xb)
            recon = F.binary_cross_entropy_with_logits(logits, xb, reduction="sum")
            kl = 0.5 * torch.sum(loc ** 2 + scale ** 2 - 2 * torch.log(scale) - 1)
            loss = (recon + kl) / batch
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"seconds_per_epoch": times, "final_loss": float(loss)}))


if __name__ == "__main__":
    main()
