"""The one sliding-window inferer: shapes, sums, 2-D/3-D networks, small images, mirrored TTA."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from autocontour.errors import InvalidInputError
from autocontour.models.inferer import SlidingWindowInferer, spatial_dims
from autocontour.models.registry import build_network


def predict_probabilities(net: nn.Module, image: Tensor, patch_size: tuple[int, ...],
                          **options: object) -> Tensor:
    return SlidingWindowInferer(tuple(patch_size)).probabilities(net, image, **options)


@pytest.fixture(scope="module")
def net3d() -> nn.Module:
    torch.manual_seed(0)
    return build_network("UNet3D", in_channels=1, out_channels=3, channels=[4, 8],
                         strides=[(2, 2, 2), (2, 2, 2)]).eval()


@pytest.fixture(scope="module")
def net2d() -> nn.Module:
    torch.manual_seed(0)
    return build_network("ResUNet2D", in_channels=1, out_channels=3, channels=[4, 8, 16]).eval()


def _image(*shape: int) -> Tensor:
    return torch.randn(1, 1, *shape, generator=torch.Generator().manual_seed(1))


class HalvesNet(nn.Module):
    """A stand-in network that names organs by where they sit in its input, as real ones do.

    Inside the "body" (image > 0) it says channel 1 ("Organ_L") on the low-x half of what it
    sees and channel 2 ("Organ_R") on the high-x half; background elsewhere.
    """

    spatial_dims = 3

    def forward(self, x: Tensor) -> Tensor:
        width = x.shape[-1]
        ramp = torch.arange(width, dtype=x.dtype).expand_as(x[:, :1])  # fixed x coordinate
        body = (x[:, :1] > 0).to(x.dtype)
        low = (ramp < width / 2).to(x.dtype)
        return 10.0 * torch.cat([1 - body, body * low, body * (1 - low)], dim=1)


def _check_probabilities(p: Tensor, classes: int, spatial: tuple[int, ...]) -> None:
    assert p.shape == (classes, *spatial)
    assert p.dtype == torch.float32 and p.device.type == "cpu"
    assert float(p.min()) >= 0.0
    torch.testing.assert_close(p.sum(0), torch.ones(spatial), atol=1e-5, rtol=0)


def test_3d_network_odd_sizes_sum_to_one(net3d: nn.Module) -> None:
    p = predict_probabilities(net3d, _image(9, 13, 11), (8, 8, 8))
    _check_probabilities(p, 3, (9, 13, 11))
    assert p.is_contiguous()


def test_2d_network_slices_as_batch(net2d: nn.Module) -> None:
    p = predict_probabilities(net2d, _image(5, 11, 13), (1, 8, 8), tta=True)
    _check_probabilities(p, 3, (5, 11, 13))
    assert p.is_contiguous()
    # Each slice is predicted on its own: slice 2 alone gives the same probabilities.
    alone = predict_probabilities(net2d, _image(5, 11, 13)[:, :, 2:3], (1, 8, 8), tta=True)
    torch.testing.assert_close(alone[:, 0], p[:, 2], atol=1e-5, rtol=1e-5)


def test_probabilities_are_the_softmax_of_the_logits(net3d: nn.Module) -> None:
    image = _image(10, 12, 9)
    with torch.no_grad():
        logits = SlidingWindowInferer((8, 8, 8)).logits(net3d, image)
    assert logits.shape == (3, 10, 12, 9)
    expected = torch.softmax(logits, dim=0)
    torch.testing.assert_close(predict_probabilities(net3d, image, (8, 8, 8)), expected,
                               atol=1e-5, rtol=1e-5)


def test_image_smaller_than_patch(net3d: nn.Module, net2d: nn.Module) -> None:
    _check_probabilities(predict_probabilities(net3d, _image(3, 5, 6), (8, 8, 8), tta=True),
                         3, (3, 5, 6))
    _check_probabilities(predict_probabilities(net2d, _image(2, 5, 3), (1, 8, 8)), 3, (2, 5, 3))


def test_list_output_uses_the_last() -> None:
    class TwoPasses(nn.Module):
        spatial_dims = 3

        def forward(self, x: Tensor) -> list[Tensor]:
            first = torch.cat([x, -x], dim=1)
            return [first, 5.0 * first]

    p = predict_probabilities(TwoPasses(), _image(4, 4, 4), (4, 4, 4))
    expected = torch.softmax(5.0 * torch.cat([_image(4, 4, 4), -_image(4, 4, 4)], 1)[0], 0)
    torch.testing.assert_close(p, expected, atol=1e-5, rtol=1e-5)


def test_tta_keeps_left_organs_on_the_left_with_mirror() -> None:
    image = torch.zeros(1, 1, 4, 6, 8)
    image[..., 1:5, 1:7] = 1.0  # the body; x index 0-3 is the low-x ("left") half
    body = image[0, 0] > 0
    low, high = body.clone(), body.clone()
    low[..., 4:] = False
    high[..., :4] = False

    plain = predict_probabilities(HalvesNet(), image, (4, 6, 8))
    assert bool((plain.argmax(0)[low] == 1).all()) and bool((plain.argmax(0)[high] == 2).all())

    mirrored = predict_probabilities(HalvesNet(), image, (4, 6, 8), tta=True, mirror=[0, 2, 1])
    _check_probabilities(mirrored, 3, (4, 6, 8))
    assert float(mirrored[1][low].min()) > 0.99 and float(mirrored[2][high].min()) > 0.99
    assert float(mirrored[0][~body].min()) > 0.99

    # Without the channel swap the flipped pass calls the left organ "right": the two passes
    # contradict each other and left/right is lost (0.5 each on both halves).
    unswapped = predict_probabilities(HalvesNet(), image, (4, 6, 8), tta=True)
    torch.testing.assert_close(unswapped[1][body], torch.full((int(body.sum()),), 0.5),
                               atol=1e-3, rtol=0)
    torch.testing.assert_close(unswapped[2][body], torch.full((int(body.sum()),), 0.5),
                               atol=1e-3, rtol=0)


def test_tta_flip_along_another_axis() -> None:
    """With lr_axis=1 the flip runs along y, which HalvesNet ignores: swapping then is wrong."""
    image = torch.ones(1, 1, 2, 4, 8)
    same = predict_probabilities(HalvesNet(), image, (2, 4, 8), tta=True, lr_axis=1)
    torch.testing.assert_close(same, predict_probabilities(HalvesNet(), image, (2, 4, 8)))
    swapped = predict_probabilities(HalvesNet(), image, (2, 4, 8), tta=True, lr_axis=1,
                                    mirror=[0, 2, 1])
    assert float(swapped[1].max()) < 0.51


def test_bad_arguments_raise(net3d: nn.Module) -> None:
    with pytest.raises(InvalidInputError, match="2 entries"):
        predict_probabilities(net3d, _image(4, 4, 4), (4, 4, 4), tta=True, mirror=[0, 1])
    with pytest.raises(InvalidInputError, match="permutation"):
        predict_probabilities(net3d, _image(4, 4, 4), (4, 4, 4), tta=True, mirror=[0, 1, 3])
    with pytest.raises(InvalidInputError, match="permutation"):
        predict_probabilities(net3d, _image(4, 4, 4), (4, 4, 4), tta=True, mirror=[0, 1, 1])
    with pytest.raises(InvalidInputError, match=r"\(1, C, Z, Y, X\)"):
        predict_probabilities(net3d, torch.zeros(1, 4, 4, 4), (4, 4, 4))
    with pytest.raises(InvalidInputError, match="lr_axis"):
        predict_probabilities(net3d, _image(4, 4, 4), (4, 4, 4), tta=True, lr_axis=3)


def test_spatial_dims_and_settings_are_checked(net3d: nn.Module, net2d: nn.Module) -> None:
    assert spatial_dims(net3d) == 3 and spatial_dims(net2d) == 2 and spatial_dims(nn.Identity()) == 3
    with pytest.raises(InvalidInputError, match="patch_size"):
        SlidingWindowInferer((8, 8))
    with pytest.raises(InvalidInputError, match="overlap"):
        SlidingWindowInferer((8, 8, 8), overlap=1.0)


def test_validation_and_prediction_use_the_one_inferer() -> None:
    """No other module of the package calls MONAI's sliding window: the windows cannot drift."""
    from pathlib import Path

    import autocontour
    root = Path(autocontour.__file__).parent
    callers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if "sliding_window_inference" in p.read_text())
    assert callers == ["models/inferer.py"]


class DtypeNet(nn.Module):
    """Records the number type its convolution computes in."""

    spatial_dims = 3

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 1)
        self.seen: set[torch.dtype] = set()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        self.seen.add(out.dtype)
        return out


def test_reduced_precision_only_where_the_device_computes_it(monkeypatch) -> None:
    from autocontour.models import inferer

    assert inferer.autocast_dtype("cuda") == torch.float16
    monkeypatch.setattr(inferer, "_cpu_has_bf16", lambda: False)
    assert inferer.autocast_dtype("cpu") is None
    net = DtypeNet()
    SlidingWindowInferer((4, 8, 8), amp=True).probabilities(net, _image(4, 8, 8))
    assert net.seen == {torch.float32}  # emulated bfloat16 would be slower: not used
    monkeypatch.setattr(inferer, "_cpu_has_bf16", lambda: True)
    assert inferer.autocast_dtype("cpu") == torch.bfloat16
    net = DtypeNet()
    low = SlidingWindowInferer((4, 8, 8), amp=True).probabilities(net, _image(4, 8, 8))
    assert net.seen == {torch.bfloat16}
    net.seen.clear()
    full = SlidingWindowInferer((4, 8, 8)).probabilities(net, _image(4, 8, 8))
    assert net.seen == {torch.float32}
    assert low.dtype == torch.float32  # blended and returned in float32 all the same
    torch.testing.assert_close(low, full, atol=0.02, rtol=0)


class ContextNet(nn.Module):
    """Answers with each voxel minus the mean of everything it is shown: padding shows."""

    spatial_dims = 3

    def forward(self, x: Tensor) -> Tensor:
        centred = x[:, :1] - x[:, :1].mean(dim=(2, 3, 4), keepdim=True)
        return torch.cat([-centred, centred], dim=1)


def test_a_volume_smaller_than_the_window_is_padded_like_a_training_patch() -> None:
    """Training patches past a volume's edge are padded with each channel's minimum (the
    cache's rule); the inferer must show the network the same, not MONAI's zeros."""
    from autocontour.models.inferer import pad_to_window

    image = _image(4, 6, 5)
    logits = SlidingWindowInferer((4, 8, 8)).logits(ContextNet(), image)
    padded = torch.full((1, 1, 4, 8, 8), float(image.min()))
    padded[:, :, :, 1:7, 1:6] = image
    expected = ContextNet()(padded)[0][:, :, 1:7, 1:6]
    torch.testing.assert_close(logits, expected)
    two = torch.cat([image, image + 5.0], dim=1)  # each channel its own minimum
    out, kept = pad_to_window(two, (4, 8, 8))
    assert float(out[0, 1].min()) == float(two[0, 1].min()) and torch.equal(out[kept], two)
