#!/usr/bin/python3
"""Fixture of models_torch2h5_test.

make DIR: builds a seeded torchvision-structured ResNet-18 (torchvision itself
if installed, else the same module tree written by hand), randomises its BN
statistics, saves it as a QTool-style checkpoint ({'state_dict': {'module.' +
name: tensor}}) to DIR/resnet18.pth and its eval-mode logits on a seeded input
to DIR/io.h5 (/input, /logits).
compare A.pth B.pth: exits 0 when both hold the same tensors (after removing
'module.' prefixes and a 'state_dict' wrapper).
"""
import sys

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet18(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, planes in enumerate([64, 128, 256, 512]):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes, 1))
            setattr(self, f"layer{i + 1}", layer)
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build(num_classes):
    try:
        import torchvision

        return torchvision.models.resnet18(num_classes=num_classes)
    except ImportError:
        return ResNet18(num_classes)


def make(out_dir):
    import h5py

    torch.manual_seed(1234)
    model = build(10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(7)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(x)
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, f"{out_dir}/resnet18.pth")
    with h5py.File(f"{out_dir}/io.h5", "w") as f:
        f.create_dataset("input", data=x.numpy())
        f.create_dataset("logits", data=logits.numpy())
    return 0


def strip(obj):
    if "state_dict" in obj:
        obj = obj["state_dict"]
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def compare(a, b):
    sa, sb = strip(torch.load(a)), strip(torch.load(b))
    if sa.keys() != sb.keys():
        print("different keys:", sorted(set(sa) ^ set(sb)))
        return 1
    for k in sa:
        if sa[k].shape != sb[k].shape or not torch.equal(sa[k].to(sb[k].dtype), sb[k]):
            print("different tensor:", k)
            return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "make":
        sys.exit(make(sys.argv[2]))
    if sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    sys.exit(f"unknown command {sys.argv[1]}")
