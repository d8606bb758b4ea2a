"""Feature networks: the MNIST CNN, files saved by TorchScript or torch.export, outputs."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.metrics.features import (
    FEATURES,
    MnistNet,
    extract,
    load_feature_net,
    mnist_net,
    save_mnist_net,
)


class _Pool(nn.Module):
    """A stand-in for a user's network: [N, 1, 8, 8] -> [N, 4, 1, 1] (as Inception's pool3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean((2, 3), keepdim=True)


def test_mnist_net_shapes_and_the_32_pixel_crop():
    net = MnistNet().eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    f, logits = net(x)
    assert f.shape == (3, FEATURES) and logits.shape == (3, 10)
    padded = nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)  # data.image_size=32
    torch.testing.assert_close(net(padded)[0], f)


def test_mnist_net_names_the_shape_it_needs():
    with pytest.raises(GanforgeError, match=r"1 x 28 x 28 gray images .*, got 3 x 64 x 64"):
        MnistNet.check((3, 64, 64))
    MnistNet.check((1, 32, 32))


def test_extract_features_and_probabilities_in_chunks():
    net = MnistNet().eval()
    x = torch.rand(7, 1, 28, 28) * 2 - 1
    f, p = extract(net, x, batch=3)
    feats, logits = net(x)
    torch.testing.assert_close(f, feats.detach())
    assert p is not None
    torch.testing.assert_close(p, torch.softmax(logits.detach(), 1))


def test_extract_flattens_a_feature_map_and_gives_no_probabilities():
    f, p = extract(_Pool(), torch.rand(5, 1, 8, 8))
    assert f.shape == (5, 4) and p is None


def test_extract_refuses_other_outputs():
    class Three(nn.Module):
        def forward(self, x):
            return x, x, x

    with pytest.raises(GanforgeError, match="returned 3 outputs"):
        extract(Three(), torch.zeros(2, 1, 2, 2))

    class Nan(nn.Module):
        def forward(self, x):
            return x.flatten(1) * float("nan")

    with pytest.raises(GanforgeError, match="NaN"):
        extract(Nan(), torch.zeros(2, 1, 2, 2))


@pytest.mark.parametrize("make", [_Pool, MnistNet])
def test_a_torchscript_file_is_a_feature_network(tmp_path, make):
    torch.manual_seed(0)
    net = make().eval()
    shape = (4, 1, 8, 8) if make is _Pool else (4, 1, 28, 28)
    path = tmp_path / "pool.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(net), str(path))
    loaded = load_feature_net(path)
    x = torch.rand(shape)
    torch.testing.assert_close(extract(loaded, x)[0], extract(net, x)[0])


def test_a_torch_export_file_is_a_feature_network(tmp_path):
    net = _Pool().eval()
    x = torch.rand(4, 1, 8, 8)
    path = tmp_path / "pool.pt2"
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: batch},)), str(path))
    loaded = load_feature_net(path)
    torch.testing.assert_close(extract(loaded, x)[0], extract(net, x)[0])


def test_missing_or_broken_network_files(tmp_path):
    with pytest.raises(GanforgeError, match="no such feature network file"):
        load_feature_net(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a network")
    with pytest.raises(GanforgeError, match="not a TorchScript"):
        load_feature_net(bad)
    with pytest.raises(GanforgeError, match="cannot read the MNIST feature network"):
        mnist_net(bad)


def test_saved_mnist_net_round_trips(tmp_path):
    torch.manual_seed(0)
    net = MnistNet().eval()
    path = tmp_path / "net.safetensors"
    save_mnist_net(net, path, {"seed": 0})
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(mnist_net(path)(x)[1], net(x)[1])


def test_extract_reads_uint8_images_as_the_data_sets_store_them():
    net = MnistNet().eval()
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    f8, _ = extract(net, x)
    f, _ = extract(net, x.float() / 127.5 - 1)
    torch.testing.assert_close(f8, f)
