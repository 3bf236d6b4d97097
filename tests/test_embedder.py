"""The DeepFace embedder on real photos, offline."""

import numpy as np
import pytest

from cipherface.embedders import deepface as deepface_plugin
from cipherface.embedders.thresholds import THRESHOLDS
from cipherface.errors import EmbeddingError, ModelWeightsMissingError, NoFaceError, UnknownPluginError
from cipherface.plugins import get_embedder
from cipherface.samples import sample_path


def test_default_model_is_dlib_128d_with_published_thresholds(embedder):
    assert embedder.dim == 128
    assert embedder.threshold("cosine") == 0.07
    assert embedder.threshold("euclidean") == 0.6


def test_threshold_table_agrees_with_deepface():
    from deepface.modules.verification import find_threshold

    for model, by_metric in THRESHOLDS.items():
        for metric, value in by_metric.items():
            assert find_threshold(model, metric) == value, (model, metric)


def test_one_face_from_a_path(embedder, faces):
    [face] = embedder.represent(faces / "img1.jpg")
    assert face.embedding.shape == (128,)
    assert face.box[2] > 100 and 0 < face.confidence <= 1


def test_bytes_and_arrays_give_the_same_embedding(embedder, faces):
    import cv2

    path = faces / "img2.jpg"
    from_path = embedder.represent(path)[0].embedding
    from_bytes = embedder.represent(path.read_bytes())[0].embedding
    from_array = embedder.represent(cv2.imread(str(path)))[0].embedding
    np.testing.assert_allclose(from_bytes, from_path, atol=1e-6)
    np.testing.assert_allclose(from_array, from_path, atol=1e-6)


def test_several_faces_come_largest_first(embedder, faces):
    found = embedder.represent(faces / "couple.jpg")
    assert len(found) == 2
    assert found[0].area >= found[1].area


def test_photo_without_a_face_names_the_file(embedder):
    path = sample_path("camera")
    with pytest.raises(NoFaceError, match="camera.png"):
        embedder.represent(path)


def test_unreadable_inputs_are_clear_errors(embedder, tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(EmbeddingError, match="not a readable image"):
        embedder.represent(tmp_path / "x.jpg")
    with pytest.raises(EmbeddingError, match="no such image file"):
        embedder.represent(tmp_path / "missing.jpg")
    with pytest.raises(EmbeddingError, match="not a readable JPEG/PNG"):
        embedder.represent(b"\x00" * 10)


def test_weights_live_in_cipherfaces_own_folder(embedder):
    import os

    folder = deepface_plugin.weights_dir()
    assert (folder / deepface_plugin.DLIB_WEIGHTS).is_file()
    assert os.environ["DEEPFACE_HOME"] == str(folder.parent.parent)
    assert not str(folder).startswith(str(os.path.expanduser("~/.deepface")))


def test_model_without_weights_names_the_file_and_never_downloads(embedder, monkeypatch):
    import gdown

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(gdown, "download", no_network)
    with pytest.raises(ModelWeightsMissingError, match=r"facenet512_weights\.onnx.*never downloads"):
        get_embedder("deepface", model="Facenet512")


def test_embedding_runs_with_downloads_forbidden(faces, monkeypatch):
    import gdown

    monkeypatch.setattr(gdown, "download", lambda *a, **k: pytest.fail("a download was attempted"))
    [face] = get_embedder("deepface").represent(faces / "img3.jpg")
    assert face.embedding.shape == (128,)


def test_unknown_model_and_embedder_names():
    with pytest.raises(EmbeddingError, match="unknown DeepFace model 'Dlib2'"):
        get_embedder("deepface", model="Dlib2")
    with pytest.raises(UnknownPluginError, match="installed embedders: deepface"):
        get_embedder("insightface")
