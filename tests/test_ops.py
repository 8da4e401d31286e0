import pytest
import torch

from udarts.ops import OPS, PAPER_OPS, MBConv, OpSettings, build_op, check_op_names


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("affine", [True, False])
def test_every_op_keeps_shape_and_passes_gradients(name, affine):
    torch.manual_seed(0)
    op = build_op(name, 8, OpSettings(affine=affine))
    x = torch.randn(2, 8, 12, 16, requires_grad=True)
    y = op(x)
    assert y.shape == x.shape
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None
    if name == "none":
        assert torch.count_nonzero(x.grad) == 0
    else:
        assert x.grad.abs().sum() > 0
        for parameter in op.parameters():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all()


def test_paper_op_set_is_the_seven_candidates():
    assert PAPER_OPS == ("conv_3x3", "conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "mbconv_3x3", "mbconv_5x5", "identity")


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_mbconv_layers_follow_the_inverted_residual(kernel_size):
    op = MBConv(8, kernel_size, OpSettings(expand_ratio=3, se_ratio=0.25))
    assert op.conv_pw[0].out_channels == 24 and op.conv_pw[0].kernel_size == (1, 1)
    assert op.conv_dw[0].groups == 24 and op.conv_dw[0].kernel_size == (kernel_size, kernel_size)
    assert op.se.conv_reduce.out_channels == 2
    assert op.conv_pwl[0].out_channels == 8 and len(op.conv_pwl) == 2  # conv + BN, no activation


def test_dilated_convs_use_dilation_two():
    assert OPS["dil_conv_3x3"](4, OpSettings())[0].dilation == (2, 2)
    assert OPS["dil_conv_5x5"](4, OpSettings())[0].dilation == (2, 2)


def test_bad_op_names_are_named():
    with pytest.raises(ValueError, match="conv_7x7"):
        check_op_names(["conv_3x3", "conv_7x7"])
    with pytest.raises(ValueError, match="repeat"):
        check_op_names(["conv_3x3", "conv_3x3"])
    with pytest.raises(ValueError, match="empty"):
        check_op_names([])
    with pytest.raises(ValueError, match="expand_ratio"):
        OpSettings(expand_ratio=0)
