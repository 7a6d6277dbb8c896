"""Architectures: output shapes, depth, and the normalising first layer."""
import pytest
import torch

from randsmooth.data import DATASETS
from randsmooth.models import build_model


@pytest.mark.parametrize("arch,dataset,batch", [("small_cnn", "mnist", 3), ("small_cnn", "digits", 3),
                                                ("cifar_resnet110", "cifar10", 2), ("cifar_resnet20", "cifar10", 2),
                                                ("resnet50", "imagenet", 1)])
def test_architecture_output_shape(arch, dataset, batch):
    info = DATASETS[dataset]
    model = build_model(arch, dataset).eval()
    with torch.no_grad():
        assert model(torch.rand(batch, *info.shape)).shape == (batch, info.num_classes)
    assert {"0.mean", "0.std"} <= set(model.state_dict())                  # normalisation travels with the weights


def test_resnet110_depth():
    convs = [m for m in build_model("cifar_resnet110", "cifar10").modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(m.kernel_size == (3, 3) for m in convs) == 109              # 1 stem + 54 blocks x 2, plus the fc: 110
