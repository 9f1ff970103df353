"""PyTorch twins of the stagewise model zoo (src/nn/Zoo.cpp), same layer order, used as the
speed and accuracy peer in benchmarks. Never a runtime dependency of stagewise."""
import torch
import torch.nn as nn


def mlp(classes=10, hidden=(1024, 1024), inp=784):
    layers, d = [nn.Flatten()], inp
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    layers.append(nn.Linear(d, classes))
    return nn.Sequential(*layers)


def lenet(classes=10, dropout=0.0, cin=1):
    def drop():
        return [nn.Dropout(dropout)] if dropout > 0 else []
    return nn.Sequential(
        nn.Conv2d(cin, 20, 5), nn.BatchNorm2d(20), nn.ReLU(), nn.MaxPool2d(3, 3), *drop(),
        nn.Conv2d(20, 50, 5), nn.BatchNorm2d(50), nn.ReLU(), nn.MaxPool2d(2, 2), *drop(),
        nn.Flatten(), nn.Linear(200, 500), nn.BatchNorm1d(500), nn.ReLU(), *drop(),
        nn.Linear(500, classes))


def simple_vgg(classes=10, cin=3):
    layers, c = [], cin
    for co in (128, 128, 256, 256, 512):
        layers += [nn.Conv2d(c, co, 3, padding=1), nn.ELU(), nn.MaxPool2d(2, 2)]
        c = co
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, classes))


def allcnn(classes=10, cin=3, dropout=0.0, input_dropout=0.0):
    def B(ci, co, k=3, s=1):
        return [nn.Conv2d(ci, co, k, stride=s, padding=1 if k == 3 else 0), nn.BatchNorm2d(co), nn.ReLU()]
    def drop(p):
        return [nn.Dropout(p)] if p > 0 else []
    return nn.Sequential(
        *drop(input_dropout), *B(cin, 96), *B(96, 96), *B(96, 96, s=2), *drop(dropout),
        *B(96, 192), *B(192, 192), *B(192, 192, s=2), *drop(dropout),
        *B(192, 192), *B(192, 192), *B(192, classes, k=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


def resnet(layers=(2, 2, 2, 2), classes=10, width=64, cin=3):
    mods = [nn.Conv2d(cin, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    c = width
    for g, n in enumerate(layers):
        co = width << g
        for b in range(n):
            mods.append(BasicBlock(c, co, 2 if (g > 0 and b == 0) else 1))
            c = co
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*mods)


def build(name, classes=10):
    if name == "mlp":
        return mlp(classes), (1, 28, 28)
    if name == "lenet":
        return lenet(classes), (1, 28, 28)
    if name == "simple_vgg":
        return simple_vgg(classes), (3, 32, 32)
    if name == "allcnn":
        return allcnn(classes), (3, 32, 32)
    if name == "resnet18":
        return resnet((2, 2, 2, 2), classes), (3, 32, 32)
    if name == "resnet34":
        return resnet((3, 4, 6, 3), classes), (3, 32, 32)
    raise ValueError(name)
