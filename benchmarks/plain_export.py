"""Figure 5's plain route: ``torch.onnx.export`` of the verification checkpoint, defaults kept.

python plain_export.py convnet_best_loss.pt plain.onnx
"""

from __future__ import annotations

import sys

import torch
from graphkit_plugins.signature.siamese import HEIGHT, WIDTH, SiameseModel


def main(checkpoint: str, output: str) -> None:
    model = SiameseModel()
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    model.eval()
    # Two distinct tensors: given one tensor twice, the exported model computed the first
    # embedding from the second input.
    first = torch.zeros(HEIGHT, WIDTH, dtype=torch.uint8)
    second = torch.full((HEIGHT, WIDTH), 255, dtype=torch.uint8)
    torch.onnx.export(
        model,
        (first, second),
        output,
        input_names=["input0", "input1"],
        output_names=["output0", "output1", "output2"],
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
