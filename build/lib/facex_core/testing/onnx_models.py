"""ONNX files in the graph layouts of insightface's released models, with random weights.

- ArcFace (glintr100 / w600k_r50 are IResNets from arcface_torch): stem conv-BN-PReLU,
  four stages of IResNet blocks down to 512 x 7 x 7, then BatchNormalization -> Flatten ->
  Gemm(25088 -> 512) -> BatchNormalization. A `tiny` variant keeps that tail exactly.
- SCRFD (det_10g / scrfd_10g_bnkps): one input 'input.1' [1, 3, H, W] and nine outputs,
  score / bbox / kps for strides 8, 16, 32, each flattened over 2 anchors per location.
  `scrfd_planted` answers fixed detections (for a fixed input size) so that decoding can
  be checked end to end; `scrfd_empty` has real convolutions and finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# The released files were exported with opset 11 (IR version 6).
OPSET = 11
IR_VERSION = 6
STRIDES = (8, 16, 32)
ANCHORS = 2


@dataclass
class GraphBuilder:
    rng: np.random.Generator
    nodes: list = field(default_factory=list)
    inits: list = field(default_factory=list)
    count: int = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, array: np.ndarray, stem: str = "w") -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), **attrs))
        return out

    def conv(self, x: str, c_in: int, c_out: int, k: int, stride: int = 1, bias: bool = False,
             pad: int | None = None) -> str:
        w = self.rng.normal(0, np.sqrt(2.0 / (c_in * k * k)), (c_out, c_in, k, k)).astype(np.float32)
        inputs = [x, self.const(w)]
        if bias:
            inputs.append(self.const(np.zeros(c_out, np.float32), "b"))
        pad = k // 2 if pad is None else pad
        return self.node("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def bn(self, x: str, c: int) -> str:
        scale = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        bias = self.rng.normal(0, 0.1, c).astype(np.float32)
        mean = self.rng.normal(0, 0.1, c).astype(np.float32)
        var = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        return self.node("BatchNormalization",
                         [x, self.const(scale), self.const(bias), self.const(mean), self.const(var)], epsilon=1e-5)

    def prelu(self, x: str, c: int) -> str:
        return self.node("PRelu", [x, self.const(np.full((c, 1, 1), 0.25, np.float32))])


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def arcface(
    widths: tuple[int, ...] = (64, 128, 256, 512),
    blocks: tuple[int, ...] = (3, 4, 14, 3),
    seed: int = 0,
    mxnet_preprocess: bool = False,
    flatten_op: str = "Flatten",
    with_dense: bool = True,
) -> onnx.ModelProto:
    """An IResNet ArcFace graph; defaults are the r50 layout, `TINY_ARCFACE` a small one."""
    g = GraphBuilder(np.random.default_rng(seed))
    x = "input.1"
    if mxnet_preprocess:
        x = g.node("Sub", [x, g.const(np.full((1, 3, 1, 1), 127.5, np.float32))])
        x = g.node("Mul", [x, g.const(np.full((1, 3, 1, 1), 1 / 128, np.float32))])
    x = g.prelu(g.bn(g.conv(x, 3, widths[0], 3), widths[0]), widths[0])
    c_in = widths[0]
    for width, depth in zip(widths, blocks, strict=True):
        for index in range(depth):
            stride = 2 if index == 0 else 1
            out = g.bn(x, c_in)
            out = g.prelu(g.bn(g.conv(out, c_in, width, 3), width), width)
            out = g.bn(g.conv(out, width, width, 3, stride), width)
            shortcut = x if stride == 1 and c_in == width else g.bn(g.conv(x, c_in, width, 1, stride), width)
            x = g.node("Add", [out, shortcut])
            c_in = width
    x = g.bn(x, c_in)
    if flatten_op == "Flatten":
        x = g.node("Flatten", [x], axis=1)
    else:
        x = g.node("Reshape", [x, g.const(np.array([-1, c_in * 49], np.int64), "shape")])
    if with_dense:
        fc = g.rng.normal(0, 1 / np.sqrt(c_in * 49), (512, c_in * 49)).astype(np.float32)
        x = g.node("Gemm", [x, g.const(fc), g.const(np.zeros(512, np.float32), "b")], transB=1)
        x = g.bn(x, 512)
    g.nodes[-1].output[0] = "fc1"
    graph = helper.make_graph(
        g.nodes,
        "arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["None", 512 if with_dense else c_in * 49])],
        g.inits,
    )
    return _model(graph)


TINY_ARCFACE = dict(widths=(8, 16, 32, 512), blocks=(1, 1, 1, 1))


@dataclass(frozen=True)
class PlantedFace:
    """A face in detector-input pixels (the letterboxed det_size x det_size image)."""

    box: np.ndarray  # [4]
    kps: np.ndarray  # [5, 2]
    score: float = 0.9


@dataclass(frozen=True)
class PlantedImage:
    """The faces a planted detector answers for one image, recognised by the mean of the
    detector's input blob (`key`); None answers them for every image."""

    faces: list[PlantedFace]
    key: float | None = None


KEY_TOLERANCE = 1e-4


def _scrfd_outputs(size: int) -> list:
    rows = [(size // s) ** 2 * ANCHORS for s in STRIDES]
    outputs = []
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        outputs += [helper.make_tensor_value_info(f"{kind}_{s}", TensorProto.FLOAT, [n, width])
                    for s, n in zip(STRIDES, rows, strict=True)]
    return outputs


def _planted_tensors(faces: list[PlantedFace], size: int) -> dict[str, np.ndarray]:
    """Outputs encoding `faces` at their nearest stride-8 anchor."""
    grid = size // 8
    tensors = {f"{kind}_{s}": np.zeros(((size // s) ** 2 * ANCHORS, w), np.float32)
               for kind, w in (("score", 1), ("bbox", 4), ("kps", 10)) for s in STRIDES}
    for face in faces:
        centre = (face.box[:2] + face.box[2:]) / 2
        col, row = np.clip(np.round(centre / 8).astype(int), 0, grid - 1)
        anchor = np.array([col, row], np.float32) * 8
        index = (row * grid + col) * ANCHORS
        tensors["score_8"][index] = face.score
        tensors["bbox_8"][index] = np.concatenate([anchor - face.box[:2], face.box[2:] - anchor]) / 8
        tensors["kps_8"][index] = ((face.kps - anchor) / 8).reshape(-1)
    return tensors


def scrfd_planted(images: list[PlantedImage] | list[PlantedFace], size: int = 640) -> onnx.ModelProto:
    """Static-size SCRFD graph answering planted faces: each image's own faces, chosen by the
    mean of the input blob (a list of faces alone is answered for any image)."""
    if images and isinstance(images[0], PlantedFace):
        images = [PlantedImage(list(images))]
    # the mean of rows first, then of those: one float32 sum over the whole blob drifts by
    # 1e-3 on dark images, more than the key tolerance
    nodes = [helper.make_node("ReduceMean", ["input.1"], ["row_means"], axes=[3], keepdims=0),
             helper.make_node("ReduceMean", ["row_means"], ["mean"], keepdims=0)]
    inits = [numpy_helper.from_array(np.array(KEY_TOLERANCE, np.float32), "tolerance")]
    names = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in STRIDES]
    totals = {name: [] for name in names}
    for index, image in enumerate(images):
        gate = f"gate_{index}"
        if image.key is None:  # always on; still computed from the input, like a detector's output
            inits.append(numpy_helper.from_array(np.zeros((), np.float32), f"zero_{index}"))
            inits.append(numpy_helper.from_array(np.ones((), np.float32), f"one_{index}"))
            nodes.append(helper.make_node("Mul", ["mean", f"zero_{index}"], [f"nothing_{index}"]))
            nodes.append(helper.make_node("Add", [f"nothing_{index}", f"one_{index}"], [gate]))
        else:
            inits.append(numpy_helper.from_array(np.array(image.key, np.float32), f"key_{index}"))
            nodes += [
                helper.make_node("Sub", ["mean", f"key_{index}"], [f"diff_{index}"]),
                helper.make_node("Abs", [f"diff_{index}"], [f"distance_{index}"]),
                helper.make_node("Less", [f"distance_{index}", "tolerance"], [f"match_{index}"]),
                helper.make_node("Cast", [f"match_{index}"], [gate], to=TensorProto.FLOAT),
            ]
        for name, value in _planted_tensors(image.faces, size).items():
            inits.append(numpy_helper.from_array(value, f"{name}_{index}"))
            nodes.append(helper.make_node("Mul", [f"{name}_{index}", gate], [f"{name}_gated_{index}"]))
            totals[name].append(f"{name}_gated_{index}")
    for name, parts in totals.items():
        nodes.append(helper.make_node("Sum", parts, [name]))
    graph = helper.make_graph(
        nodes, "scrfd_planted",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        _scrfd_outputs(size), inits,
    )
    return _model(graph)


def detector_input_mean(image_rgb: np.ndarray, size: int = 640) -> float:
    """The mean of the blob insightface's SCRFD feeds its network for this image: the key of
    a PlantedImage. Letterbox to size x size, then (pixel - 127.5) / 128."""
    import cv2

    height, width = image_rgb.shape[:2]
    ratio = height / width
    new_w, new_h = (int(size / ratio), size) if ratio > 1.0 else (size, int(size * ratio))
    canvas = np.zeros((size, size, 3), np.float32)
    canvas[:new_h, :new_w] = cv2.resize(np.ascontiguousarray(image_rgb[..., ::-1]), (new_w, new_h))
    return float(((canvas - 127.5) / 128.0).mean(dtype=np.float64))


def scrfd_empty(seed: int = 0, keypoints: bool = True) -> onnx.ModelProto:
    """Dynamic-size SCRFD graph (real strided convolutions per level) whose scores stay near 0."""
    g = GraphBuilder(np.random.default_rng(seed))
    heads = {"score": [], "bbox": [], "kps": []}
    kinds = (("score", 1), ("bbox", 4)) + ((("kps", 10),) if keypoints else ())
    for stride in STRIDES:
        feat = g.node("Relu", [g.conv("input.1", 3, 8, stride, stride, pad=0)])
        for kind, width in kinds:
            head = g.conv(feat, 8, ANCHORS * width, 1, bias=True)
            if kind == "score":
                head = g.node("Sigmoid", [g.node("Add", [head, g.const(np.full((1, 1, 1, 1), -20.0, np.float32))])])
            flat = g.node("Reshape",
                          [g.node("Transpose", [head], perm=[0, 2, 3, 1]),
                           g.const(np.array([-1, width], np.int64), "shape")])
            heads[kind].append(flat)
    outputs = []
    for kind, width in kinds:
        for stride, tensor in zip(STRIDES, heads[kind], strict=True):
            name = f"{kind}_{stride}"
            g.nodes.append(helper.make_node("Identity", [tensor], [name]))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["?", width]))
    graph = helper.make_graph(
        g.nodes, "scrfd_empty",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "?", "?"])],
        outputs, g.inits,
    )
    return _model(graph)


def letterbox_scale(height: int, width: int, size: int = 640) -> float:
    """insightface SCRFD's resize factor from an image to its det_size input."""
    ratio = height / width
    if ratio > 1.0:
        return size / height
    return int(size * ratio) / height
