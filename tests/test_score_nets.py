"""Score networks and critics: shapes, conditioning, clear errors."""

import pytest
import torch

from sdekit_score.training.nets import MLP, Discriminator, FourierEmbedding, MLPDiscriminator, UNet


@pytest.mark.parametrize(
    ("channels", "size", "width_mults"),
    [(1, (8, 8), (1, 2)), (3, (16, 16), (1, 2, 2)), (2, (12, 8), (1, 2, 2)), (4, (7, 5), (1,))],
)
@pytest.mark.parametrize("embedding", ["sinusoidal", "fourier"])
def test_unet_output_shape_equals_input_shape(channels, size, width_mults, embedding):
    torch.manual_seed(0)
    net = UNet(channels, base_width=8, width_mults=width_mults, embedding=embedding)
    x = torch.randn(3, channels, *size)
    assert net(x, torch.rand(3)).shape == x.shape


def test_unet_with_two_res_blocks_dropout_and_no_attention_keeps_shape():
    net = UNet(2, base_width=8, num_res_blocks=2, dropout=0.1, attention=False, embed_dim=16)
    x = torch.randn(2, 2, 8, 8)
    assert net(x, torch.rand(2)).shape == x.shape


def test_unet_rejects_sizes_not_divisible_by_the_downsampling_factor():
    net = UNet(1, base_width=8, width_mults=(1, 2, 2))
    with pytest.raises(ValueError, match="not divisible by 4"):
        net(torch.randn(2, 1, 6, 8), torch.rand(2))


def test_unet_rejects_a_wrong_channel_count_and_conditioning_shape():
    net = UNet(1, base_width=8)
    with pytest.raises(ValueError, match=r"\(batch, 1, H, W\)"):
        net(torch.randn(2, 3, 8, 8), torch.rand(2))
    with pytest.raises(ValueError, match="conditioning c"):
        net(torch.randn(2, 1, 8, 8), torch.rand(3))


def test_conditioning_changes_the_output_and_a_0d_conditioning_is_shared():
    torch.manual_seed(0)
    net = UNet(1, base_width=8).eval()
    x = torch.randn(2, 1, 8, 8)
    assert not torch.allclose(net(x, torch.full((2,), 10.0)), net(x, torch.full((2,), 900.0)))
    assert torch.equal(net(x, torch.tensor(5.0)), net(x, torch.full((2,), 5.0)))


def test_fourier_frequencies_are_saved_with_the_model():
    torch.manual_seed(0)
    a = UNet(1, base_width=8, embedding="fourier")
    torch.manual_seed(1)
    b = UNet(1, base_width=8, embedding="fourier")
    b.load_state_dict(a.state_dict())
    x, c = torch.randn(2, 1, 8, 8), torch.rand(2)
    assert torch.equal(a(x, c), b(x, c))
    assert any(isinstance(m, FourierEmbedding) for m in a.modules())


def test_unknown_embedding_is_a_clear_error():
    with pytest.raises(ValueError, match="'sinusoidal' or 'fourier'"):
        UNet(1, embedding="learned")


def test_mlp_output_shape_and_input_check():
    net = MLP(3, hidden=32, depth=2)
    x = torch.randn(5, 3)
    assert net(x, torch.rand(5)).shape == x.shape
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        net(torch.randn(5, 2), torch.rand(5))


def test_discriminators_return_one_value_per_sample():
    assert Discriminator(2, base_width=8)(torch.randn(4, 2, 8, 8)).shape == (4,)
    assert Discriminator(1, base_width=8, depth=3)(torch.randn(4, 1, 16, 12)).shape == (4,)
    assert MLPDiscriminator(2, hidden=16)(torch.randn(4, 2)).shape == (4,)
    with pytest.raises(ValueError, match="images"):
        Discriminator(1)(torch.randn(4, 64))
