"""The Siamese signature-verification model (SigNet trunk), laid out as its checkpoint is.

The parameter names and shapes match ``convnet_best_loss.pt``, the checkpoint
the original Kaggle notebook saves as ``torch.save({'model': state_dict})``,
so that file loads unchanged. :func:`build_verification_checkpoint` writes a
stand-in of the same layout with seeded weights, for the demo and the tests.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

#: The image size the model is trained on: grey-scale, 150 rows by 220 columns.
HEIGHT, WIDTH = 150, 220
#: The size of one embedding.
FEATURES = 2048
#: conv5's 256 channels on a 3x5 grid: what 150x220 becomes after the strides and pools.
FLAT = 256 * 3 * 5


def _conv_bn_mish(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
) -> nn.Sequential:
    # No conv bias: the batch norm right after it has its own shift.
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            bn=nn.BatchNorm2d(out_channels),
            relu=nn.Mish(),
        )
    )


def _linear_bn_mish(in_features: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            fc=nn.Linear(in_features, out_features, bias=False),
            bn=nn.BatchNorm1d(out_features),
            relu=nn.Mish(),
        )
    )


class SigNet(nn.Module):
    """The convolutional trunk: a 150x220 grey image to a 2048-value embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_space_size = FEATURES
        self.conv_layers = nn.Sequential(
            OrderedDict(
                conv1=_conv_bn_mish(1, 96, 11, stride=4),
                maxpool1=nn.MaxPool2d(3, 2),
                conv2=_conv_bn_mish(96, 256, 5, padding=2),
                maxpool2=nn.MaxPool2d(3, 2),
                conv3=_conv_bn_mish(256, 384, 3, padding=1),
                conv4=_conv_bn_mish(384, 384, 3, padding=1),
                conv5=_conv_bn_mish(384, 256, 3, padding=1),
                maxpool3=nn.MaxPool2d(3, 2),
            )
        )
        self.fc_layers = nn.Sequential(
            OrderedDict(
                fc1=_linear_bn_mish(FLAT, FEATURES),
                fc2=_linear_bn_mish(FEATURES, FEATURES),
            )
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.conv_layers(img)
        x = x.view(x.shape[0], FLAT)
        return self.fc_layers(x)


class SiameseModel(nn.Module):
    """Two images to their embeddings and a same-signer score.

    ``forward(img1, img2)`` takes images of 150x220 pixels with values 0-255
    (any dtype; a uint8 [150, 220] array is one image) and returns
    ``(embedding1, embedding2, score)``, shaped [N, 2048], [N, 2048], [N, 1].
    The score is a logit: no sigmoid is applied. ``projection2d`` is in the
    checkpoint but not used by ``forward``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.model = SigNet()
        self.probs = nn.Linear(2 * FEATURES, 1)
        self.projection2d = nn.Linear(FEATURES, 2)

    def forward_once(self, img: torch.Tensor) -> torch.Tensor:
        return self.model(img)

    def forward(
        self, img1: torch.Tensor, img2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        img1 = img1.view(-1, 1, HEIGHT, WIDTH).float().div(255)
        img2 = img2.view(-1, 1, HEIGHT, WIDTH).float().div(255)
        embedding1 = self.forward_once(img1)
        embedding2 = self.forward_once(img2)
        output = self.probs(torch.cat([embedding1, embedding2], dim=1))
        return embedding1, embedding2, output


def build_verification_checkpoint(path: Path, *, seed: int = 0) -> Path:
    """Write a stand-in of ``convnet_best_loss.pt``: ``{'model': state_dict}`` with seeded weights.

    The batch-norm statistics are set to values far from their initial 0 and
    1, so a conversion that ignored them (exporting in training mode, say)
    gives different outputs and fails verification.

    Args:
        path: Where to write the checkpoint; missing folders are created.
        seed: Seeds every weight; the same seed gives the same file contents.

    Returns:
        ``path``.
    """
    generator = torch.Generator().manual_seed(seed)
    model = SiameseModel()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(1000)
            elif name.endswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.5)
            elif name.endswith("bn.weight"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
            elif name.endswith("bn.bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif tensor.dim() > 1:
                # He-style scale keeps activations in range through eight layers.
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.01)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return path
