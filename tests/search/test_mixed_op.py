import torch

from udarts.ops import OpSettings
from udarts.search.mixed_op import MixedOp


def test_mixed_op_is_the_softmax_weighted_sum_of_its_ops():
    torch.manual_seed(0)
    names = ["none", "conv_3x3", "dil_conv_5x5", "mbconv_3x3", "identity"]
    mixed = MixedOp(6, names, OpSettings(affine=False)).eval()
    x = torch.randn(2, 6, 8, 8)
    weights = torch.softmax(torch.randn(len(names)), dim=0)
    expected = sum(w * op(x) for w, op in zip(weights, mixed.ops))
    torch.testing.assert_close(mixed(x, weights), expected)
    one_hot = torch.zeros(len(names))
    one_hot[1] = 1.0
    torch.testing.assert_close(mixed(x, one_hot), mixed.ops[1](x))
