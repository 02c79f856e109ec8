"""ArcFace ONNX: the pre-FC 512x7x7 map found by graph pattern, on the released graph layout."""

import numpy as np
import onnx
import pytest
import torch
from conftest import annotated, image_tensor
from onnx import numpy_helper

from facex_core.errors import ModelFileError, ModelFileMissingError
from facex_core.faces.crops import align_faces
from facex_core.ford.identity import IdentityEncoder, find_feature_map, has_baked_in_normalisation
from facex_core.testing import onnx_models


def _tail_parameters(model: onnx.ModelProto) -> dict:
    """Gemm weight/bias and the final BatchNormalization's parameters of an ArcFace graph."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    bn = model.graph.node[-1]
    return {"w": inits[gemm.input[1]], "b": inits[gemm.input[2]], "bn": [inits[name] for name in bn.input[1:]]}


@pytest.fixture(scope="module")
def hanks():
    """Tom Hanks' crop ships ArcFace-aligned at 112: the real input of a recognition model."""
    return image_tensor("portraits/real_hanks_aligned112_gray.png")


def test_map_is_the_flatten_input_and_the_embedding_is_computed_from_it(arcface_file, hanks):
    model = onnx.load(str(arcface_file))
    flatten = next(n for n in model.graph.node if n.op_type == "Flatten")
    assert find_feature_map(model.graph) == flatten.input[0]
    features = IdentityEncoder(arcface_file, "cpu").encode_aligned(hanks)
    assert features.tokens.shape == (1, 49, 512) and features.embedding.shape == (1, 512)
    # Rebuild the embedding from the returned tokens with the graph's own tail.
    tail = _tail_parameters(model)
    flat = features.tokens[0].T.reshape(-1).numpy()
    dense = tail["w"] @ flat + tail["b"]
    scale, bias, mean, var = tail["bn"]
    expected = (dense - mean) / np.sqrt(var + 1e-5) * scale + bias
    expected /= np.linalg.norm(expected)
    # ONNX Runtime's Gemm in float32 against NumPy in float64 over 25,088 products, then normalised
    np.testing.assert_allclose(features.embedding[0].numpy(), expected, rtol=0, atol=1e-4)
    assert float(features.embedding.norm()) == pytest.approx(1.0, abs=1e-5)


def test_reshape_exports_are_found_too(tmp_path):
    model = onnx_models.arcface(**onnx_models.TINY_ARCFACE, flatten_op="Reshape")
    reshape = next(n for n in model.graph.node if n.op_type == "Reshape")
    assert find_feature_map(model.graph) == reshape.input[0]


def test_mxnet_graphs_with_baked_in_normalisation_take_raw_pixels(tmp_path, hanks):
    plain = onnx_models.arcface(**onnx_models.TINY_ARCFACE, seed=3)
    baked = onnx_models.arcface(**onnx_models.TINY_ARCFACE, seed=3, mxnet_preprocess=True)
    assert not has_baked_in_normalisation(plain.graph) and has_baked_in_normalisation(baked.graph)
    onnx.save(baked, str(tmp_path / "baked.onnx"))
    encoder = IdentityEncoder(tmp_path / "baked.onnx", "cpu")
    assert (encoder.input_mean, encoder.input_std) == (0.0, 1.0)
    assert encoder.encode_aligned(hanks).tokens.shape == (1, 49, 512)


def test_graph_without_a_dense_tail_is_refused(tmp_path):
    onnx.save(onnx_models.arcface(**onnx_models.TINY_ARCFACE, with_dense=False), str(tmp_path / "x.onnx"))
    with pytest.raises(ModelFileError, match="does not end in Flatten -> fully connected"):
        IdentityEncoder(tmp_path / "x.onnx", "cpu")


def test_detector_file_is_refused_as_recognition_model(empty_detector_file):
    with pytest.raises(ModelFileError, match="512x7x7 identity map cannot be found"):
        IdentityEncoder(empty_detector_file, "cpu")


def test_corrupt_and_missing_files(tmp_path, arcface_file):
    broken = tmp_path / "glintr100.onnx"
    broken.write_bytes(arcface_file.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        IdentityEncoder(broken, "cpu")
    with pytest.raises(ModelFileMissingError, match="download antelopev2/glintr100"):
        IdentityEncoder(tmp_path / "missing" / "glintr100.onnx", "cpu")


def test_faces_are_realigned_to_the_arcface_template_per_face(arcface_file):
    image = annotated("multi/real_obama_biden_oval_office.jpg")
    faces = align_faces(image_tensor(image.name), [image.detections()], 512)
    features = IdentityEncoder(arcface_file, "cpu").encode(faces)
    assert features.tokens.shape == (2, 49, 512)
    assert not torch.allclose(features.embedding[0], features.embedding[1])
