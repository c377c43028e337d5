"""The PyTorch transcription of Spreadout's model and training step, in one place.

ResNet-18 (CIFAR stem at <= 64 px, ImageNet stem above, as Spreadout chooses) ending in
L2-normalised features, Eq. 7 of Ye et al. (CVPR 2019) with the released code's stop-gradient,
and one SGD step (lr 0.03, momentum 0.9, weight decay 5e-4). Imported by the two entry points
beside it, so that the benchmark that times a step and the one that trains with it run the same
model and the same step:

- step.py (benchmarks/vs-pytorch/run.sh): times the step of `spreadout bench` on random inputs;
- train.py (benchmarks/fidelity/run.sh): the paper's whole training on a folder, kNN per epoch.

Beside them, for benchmarks/gpu-parity/run.sh (standard library only, no torch):
parity_data.py writes its tiny image folder, compare_weights.py compares two trained models.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

# Runs on Debian's torch 1.13 (CI's smoke run of benchmarks/vs-pytorch/run.sh, CPU) as on the 2.x of
# a GPU machine, measuring the same thing on both: nothing here needs 2.x (no torch.compile, no
# torch.amp.* spellings, no 2.x-only keywords). The newest APIs it uses are torch.autocast with a
# device type (1.10; torch.cuda.amp.autocast before it could not do the CPU), the TF32 switches and
# zero_grad(set_to_none=) (1.7) and channels_last (1.5); an older torch would fail deep inside a
# step, so it is refused here with the reason.
_TORCH_VERSION = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
if _TORCH_VERSION < (1, 10):
    raise SystemExit(f"benchmarks/pytorch needs torch 1.10 or newer (torch.autocast with a "
                     f"device type); this python has {torch.__version__}")


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class EmbeddingNet(nn.Module):
    """The network of docs/pytorch.md ("Using a trained model in PyTorch")."""

    def __init__(self, width, dim, cifar_stem):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False) if cifar_stem else nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.pool = nn.Identity() if cifar_stem else nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(w)
        stage = lambda cin, cout, s: nn.Sequential(BasicBlock(cin, cout, s), BasicBlock(cout, cout, 1))
        self.layer1, self.layer2 = stage(w, w, 1), stage(w, 2 * w, 2)
        self.layer3, self.layer4 = stage(2 * w, 4 * w, 2), stage(4 * w, 8 * w, 2)
        self.linear = nn.Linear(8 * w, dim)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return F.normalize(self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1)), dim=1)


def spread_out_loss(features, tau):
    """Eq. 7: rows 0..m are first views, m..2m second views; the right factor is detached."""
    features = features.float()  # the loss in f32 whatever the convolutions ran in
    n = features.shape[0]
    rows = torch.arange(n, device=features.device)
    positive = (rows + n // 2) % n
    similarity = features @ features.detach().t() / tau
    self_mask = torch.eye(n, dtype=torch.bool, device=features.device)
    log_denominator = torch.logsumexp(similarity.masked_fill(self_mask, float("-inf")), dim=1)
    log_p_positive = similarity[rows, positive] - log_denominator
    p = torch.exp(similarity - log_denominator[:, None])
    negatives = ~self_mask
    negatives[rows, positive] = False
    log_not_negative = torch.log1p(-p.clamp(max=1 - 1e-7)) * negatives
    return -(log_p_positive + log_not_negative.sum(dim=1)).mean()


TAU = 0.1
LR, MOMENTUM, WEIGHT_DECAY = 0.03, 0.9, 5e-4


def sgd(net, lr=LR):
    """The optimiser of `spreadout train`: SGD with momentum and weight decay."""
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def training_step(net, optimizer, inputs, autocast_dtype=None, tau=TAU):
    """One step: 2m rows (first views 0..m, second views m..2m) forward in one pass, Eq. 7, backward,
    SGD. `autocast_dtype` runs the forward under torch.autocast (the bf16 timing mode). Returns the
    loss tensor (not read, so that a timed loop does not wait for the device)."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(inputs.device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        features = net(inputs)
    loss = spread_out_loss(features, tau)
    loss.backward()
    optimizer.step()
    return loss
