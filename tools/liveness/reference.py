"""PyTorch reference for Ipseity's MiniFASNet liveness (crates/ipseity-face/src/liveness.rs).

Builds MiniFASNet from standard torch.nn layers, sizing every layer from the
state_dict's tensor shapes (so one definition covers V2 and V1SE), loads the
weights strictly (every key must match a parameter or buffer), and prints the
class probabilities for each patch our Rust code wrote out:

    <case> <fnv1a-32 of the patch bytes> <p0> <p1> <p2>

Each patch file is `<case>.bgr`, 80x80x3 bytes in BGR order, where `<case>`
ends with `@<model file name>`. BatchNorm runs unfolded here, in eval mode,
so this checks the Rust folding as well as the layers.
"""

import argparse
import pathlib
import sys

import numpy as np
import torch
from torch import nn


def fnv1a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


class ConvUnit(nn.Module):
    """Convolution without bias, batch norm, and (except projections) PReLU."""

    def __init__(self, cin, cout, kernel, stride, pad, groups, with_prelu):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.with_prelu = with_prelu
        if with_prelu:
            self.prelu = nn.PReLU(cout)

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.with_prelu else x


class Gate(nn.Module):
    """Squeeze-excitation: channel means -> 1x1 conv, BN, ReLU -> 1x1 conv, BN, sigmoid."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        g = x.mean(dim=(2, 3), keepdim=True)
        g = torch.relu(self.bn1(self.fc1(g)))
        return x * torch.sigmoid(self.bn2(self.fc2(g)))


def shape(sd, key):
    return tuple(sd[key].shape)


class Bottleneck(nn.Module):
    """1x1 expansion, 3x3 depthwise (maybe strided), 1x1 projection; residual when stride 1."""

    def __init__(self, sd, name, cin, stride, residual):
        super().__init__()
        wide = shape(sd, f"{name}.conv.conv.weight")[0]
        dw = shape(sd, f"{name}.conv_dw.conv.weight")[0]
        out = shape(sd, f"{name}.project.conv.weight")[0]
        self.conv = ConvUnit(cin, wide, 1, 1, 0, 1, True)
        self.conv_dw = ConvUnit(wide, dw, 3, stride, 1, wide, True)
        self.project = ConvUnit(dw, out, 1, 1, 0, 1, False)
        self.residual = residual
        self.gated = residual and f"{name}.se_module.fc1.weight" in sd
        if self.gated:
            self.se_module = Gate(out, shape(sd, f"{name}.se_module.fc1.weight")[0])
        self.out = out

    def forward(self, x):
        y = self.project(self.conv_dw(self.conv(x)))
        if not self.residual:
            return y
        if self.gated:
            y = self.se_module(y)
        return x + y


class Stage(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.model = nn.Sequential(*blocks)

    def forward(self, x):
        return self.model(x)


class MiniFASNet(nn.Module):
    def __init__(self, sd):
        super().__init__()
        c1 = shape(sd, "conv1.conv.weight")[0]
        self.conv1 = ConvUnit(3, c1, 3, 2, 1, 1, True)
        c2 = shape(sd, "conv2_dw.conv.weight")[0]
        self.conv2_dw = ConvUnit(c1, c2, 3, 1, 1, c2, True)
        channels = c2
        for down, stage in (("conv_23", "conv_3"), ("conv_34", "conv_4"), ("conv_45", "conv_5")):
            block = Bottleneck(sd, down, channels, 2, False)
            setattr(self, down, block)
            channels = block.out
            blocks = []
            i = 0
            while f"{stage}.model.{i}.conv.conv.weight" in sd:
                b = Bottleneck(sd, f"{stage}.model.{i}", channels, 1, True)
                blocks.append(b)
                channels = b.out
                i += 1
            setattr(self, stage, Stage(blocks))
        sep = shape(sd, "conv_6_sep.conv.weight")[0]
        self.conv_6_sep = ConvUnit(channels, sep, 1, 1, 0, 1, True)
        dw_shape = shape(sd, "conv_6_dw.conv.weight")
        self.conv_6_dw = ConvUnit(sep, dw_shape[0], dw_shape[2:], 1, 0, sep, False)
        emb, flat = shape(sd, "linear.weight")
        self.linear = nn.Linear(flat, emb, bias=False)
        self.bn = nn.BatchNorm1d(emb)
        self.prob = nn.Linear(emb, shape(sd, "prob.weight")[0], bias=False)

    def forward(self, x):
        for name in ("conv1", "conv2_dw", "conv_23", "conv_3", "conv_34", "conv_4",
                     "conv_45", "conv_5", "conv_6_sep", "conv_6_dw"):
            x = getattr(self, name)(x)
        x = self.bn(self.linear(torch.flatten(x, 1)))
        return self.prob(x)


def load(path):
    raw = torch.load(path, map_location="cpu", weights_only=True)
    sd = {k.removeprefix("module."): v for k, v in raw.items()}
    net = MiniFASNet(sd)
    net.load_state_dict(sd, strict=True)
    return net.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=pathlib.Path, help="folder with the .pth files")
    ap.add_argument("crops", type=pathlib.Path, help="folder of <case>.bgr patches")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    nets = {}
    crops = sorted(args.crops.glob("*.bgr"))
    if not crops:
        sys.exit(f"no .bgr patches in {args.crops}")
    for crop in crops:
        case = crop.name[: -len(".bgr")]
        model = case.rsplit("@", 1)[-1]
        if model not in nets:
            nets[model] = load(args.models / model)
        data = crop.read_bytes()
        img = np.frombuffer(data, dtype=np.uint8).reshape(80, 80, 3)
        x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32)).unsqueeze(0)
        p = torch.softmax(nets[model](x), dim=1)[0].tolist()
        print(case, fnv1a(data), " ".join(f"{v:.9g}" for v in p))


if __name__ == "__main__":
    main()
