import pytest
import torch

from perceptlab import losses


def _pair(seed=0, shape=(3, 2, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.rand(shape, generator=g)


def test_mse_and_l1_match_torch_reference():
    x, y = _pair()
    assert torch.allclose(losses.mse(x, y), torch.nn.functional.mse_loss(x, y))
    assert torch.allclose(losses.l1(x, y), torch.nn.functional.l1_loss(x, y))


def test_reduction_none_gives_one_value_per_image():
    x, y = _pair()
    per = losses.mse(x, y, reduction="none")
    assert per.shape == (3,)
    assert torch.allclose(per, ((x - y) ** 2).flatten(1).mean(1))
    assert torch.allclose(per.mean(), losses.mse(x, y))


def test_modules_equal_functions():
    x, y = _pair(1)
    assert torch.equal(losses.MSELoss()(x, y), losses.mse(x, y))
    assert torch.equal(losses.L1Loss(reduction="none")(x, y), losses.l1(x, y, "none"))


def test_get_by_name_and_callable():
    assert losses.get("l2") is losses.mse
    assert losses.get("l1") is losses.l1
    assert losses.get(losses.mse) is losses.mse
    with pytest.raises(ValueError, match="loss must be"):
        losses.get("ssim?")


@pytest.mark.parametrize("bad, match", [
    (lambda x, y: (x, y[:, :1]), "same shape"),
    (lambda x, y: (x * 2, y), r"x must have values in \[0"),
    (lambda x, y: (x, y.double().long()), "y must be a floating-point"),
    (lambda x, y: (x[0], y[0]), "x must have shape"),
])
def test_bad_inputs_raise_value_error_naming_argument(bad, match):
    x, y = _pair()
    with pytest.raises(ValueError, match=match):
        losses.mse(*bad(x, y))


def test_bad_reduction_raises():
    x, y = _pair()
    with pytest.raises(ValueError, match="reduction"):
        losses.l1(x, y, reduction="sum")
