"""Photo-pipeline evaluation (`evaluate --photos`): the measures on a hand-checkable case, a folder of real face
photos and a blank one through detection, framing and a closed-form classifier, the card it writes, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fer_core.cli import main
from fer_core.evaluation import photo_gallery, photo_store
from fer_core.evaluation.photos import NO_FACE, evaluate_photos, list_photos, photo_scores
from fer_core.inference.faces import DEFAULT_CROP, DEFAULT_DETECTOR
from fer_core.models import registry
from fer_core.video.sample import astronaut_head
from tests.model_fixtures import make_model

KEY = photo_store.pipeline_key(DEFAULT_DETECTOR, DEFAULT_CROP)


def write_photo_folder(root, split: str = "test"):
    """<root>/<split>/<emotion>/: three real face photos (the astronaut, mirrored or not) and a blank photo
    of a (happy, sad) model's emotions, a face of an emotion it lacks (angry) and a file that is no image."""
    head = astronaut_head()
    photos = {"happy": {"face_a.jpg": head, "face_b.png": head[:, ::-1], "blank.png": np.full((200, 200, 3), 128,
                                                                                               np.uint8)},
              "sad": {"face_c.jpg": head}, "angry": {"face_d.jpg": head[:, ::-1]}}
    base = root / split if split else root
    for emotion, files in photos.items():
        (base / emotion).mkdir(parents=True, exist_ok=True)
        for name, image in files.items():
            Image.fromarray(np.ascontiguousarray(image)).save(base / emotion / name)
    (base / "happy" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg at all")
    return root


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A registry with one model that calls every face happy (brightness above 1 %), and the photo folder."""
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    make_model(tmp_path / "models", "always_happy", threshold=0.01, default=True)
    return tmp_path, write_photo_folder(tmp_path / "photos")


def test_scores_by_hand():
    # labels (happy, sad): 3 happy photos (right, right, no face) and 2 sad ones (called happy, right)
    s = photo_scores([0, 0, 0, 1, 1], [0, 0, NO_FACE, 0, 1], ("happy", "sad"))
    assert (s["n"], s["faces_found"], s["face_found"]) == (5, 4, 0.8)
    assert s["accuracy"] == pytest.approx(3 / 5)  # the photo without a face is wrong
    assert s["accuracy_found"] == pytest.approx(3 / 4)
    assert s["per_class"]["happy"]["recall"] == pytest.approx(2 / 3)
    happy = s["per_class"]["happy"]
    assert happy["recall_found"] == 1.0 and happy["face_found"] == pytest.approx(2 / 3)
    assert s["per_class"]["sad"]["recall"] == 0.5 and s["per_class"]["happy"]["precision"] == pytest.approx(2 / 3)
    f1_happy, f1_sad = 2 / 3, 2 / 3  # happy: P 2/3, R 2/3; sad: P 1, R 1/2
    assert s["macro_f1"] == pytest.approx((f1_happy + f1_sad) / 2)
    assert s["five_class_emotions"] == ["happy", "sad"] and s["five_class_recall"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert s["confusion_labels"] == ["happy", "sad", "no face"]
    assert s["confusion_matrix"] == [[2, 0, 1], [1, 1, 0]]


def test_five_class_recall_is_over_the_five_and_macro_f1_over_the_emotions_present():
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    y_true = [0, 1, 3, 4, 5, 6]
    y_pred = [0, 3, 3, 4, NO_FACE, 2]  # disgust wrong, surprise lost, neutral called fear (no fear photo)
    s = photo_scores(y_true, y_pred, labels)
    assert s["five_class_emotions"] == ["angry", "happy", "neutral", "sad", "surprise"]
    assert s["five_class_recall"] == pytest.approx(3 / 5)
    assert set(s["per_class"]) == {"angry", "disgust", "happy", "sad", "surprise", "neutral"}  # no fear photo
    f1 = {"angry": 1, "disgust": 0, "happy": 2 / 3, "sad": 1, "surprise": 0, "neutral": 0}
    assert s["macro_f1"] == pytest.approx(sum(f1.values()) / 6)


def test_list_photos_layouts_limit_and_bad_folders(tmp_path):
    flat = list_photos(write_photo_folder(tmp_path / "flat", split=""))
    nested = list_photos(write_photo_folder(tmp_path / "nested"))
    assert flat.files == [f.removeprefix("test/") for f in nested.files] and flat.emotions == nested.emotions
    assert (nested.split, nested.name, flat.split) == ("test", "nested", "")
    assert nested.counts() == {"angry": 1, "happy": 4, "sad": 1}
    assert list_photos(tmp_path / "nested", limit=1).counts() == {"angry": 1, "happy": 1, "sad": 1}
    from fer_core.data.fer_dataset import DataError

    with pytest.raises(DataError, match="does not exist"):
        list_photos(tmp_path / "nowhere")
    (tmp_path / "loose").mkdir()
    Image.fromarray(astronaut_head()).save(tmp_path / "loose" / "a.jpg")
    with pytest.raises(DataError, match="no photos in emotion folders"):
        list_photos(tmp_path / "loose")


def test_pipeline_on_real_faces_and_a_blank_photo(env, caplog):
    tmp, photos = env
    info = registry.get_model("always_happy")
    result = evaluate_photos(info, photos)
    # happy: two faces (right) and a blank photo (no face: wrong); sad: a face called happy; angry: skipped;
    # broken.jpg: left out
    assert (result["n"], result["faces_found"], result["face_found"]) == (4, 3, 0.75)
    assert result["accuracy"] == pytest.approx(2 / 4) and result["accuracy_found"] == pytest.approx(2 / 3)
    assert result["per_class"]["happy"]["recall"] == pytest.approx(2 / 3) and result["per_class"]["sad"]["recall"] == 0
    assert result["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)
    assert result["confusion_matrix"] == [[2, 0, 1], [1, 0, 0]]
    assert result["skipped_by_class"] == {"angry": 1} and result["photos_by_class"] == {"happy": 3, "sad": 1}
    assert result["unreadable"] == 1 and result["unreadable_files"][0][0] == "test/happy/broken.jpg"
    assert "broken.jpg" in caplog.text
    assert (result["detector"], result["crop"], result["tta"]) == (DEFAULT_DETECTOR, DEFAULT_CROP, "none")
    assert result["ms_per_photo"] > 0 and result["dataset"]["name"] == "photos"
    assert result["dataset"]["n_photos"] == 6 and len(result["dataset"]["id"]) == 16
    pred = result.predictions
    by_file = dict(zip(pred.files.tolist(), pred.found.tolist()))
    assert by_file == {"test/happy/blank.png": False, "test/happy/face_a.jpg": True, "test/happy/face_b.png": True,
                       "test/sad/face_c.jpg": True}
    face = pred.boxes[pred.files.tolist().index("test/happy/face_a.jpg")]
    assert 60 < face[2] < 200 and pred.confidence[pred.found].min() > 0.5
    # the same photos copied elsewhere, without the test/ level, have the same content id; another photo changes it
    assert evaluate_photos(info, write_photo_folder(tmp / "flat", ""))["dataset"]["id"] == result["dataset"]["id"]
    copy = write_photo_folder(tmp / "copy")
    Image.fromarray(astronaut_head()[::-1]).save(copy / "test" / "sad" / "face_e.jpg")
    assert evaluate_photos(info, copy)["dataset"]["id"] != result["dataset"]["id"]


def test_saved_result_card_and_gallery(env):
    _, photos = env
    info = registry.get_model("always_happy")
    result = evaluate_photos(info, photos)
    path = photo_store.save_photo_evaluation(info, result)
    card = registry.get_model("always_happy").card
    saved = card["photo_metrics"][result["dataset"]["id"]][KEY]
    assert saved["accuracy"] == result["accuracy"] and saved["predictions"] == path.relative_to(info.path).as_posix()
    assert path.parent.name == result["dataset"]["id"] and path.parent.parent.name == "eval"
    pred = photo_store.load_photo_predictions(registry.get_model("always_happy"), result["dataset"]["id"], KEY)
    np.testing.assert_array_equal(pred.y_pred, result.predictions.y_pred)
    assert pred.meta["dataset"]["source"] == str(photos)
    sections = photo_gallery.miss_gallery(pred)
    assert [s.title for s in sections] == ["No face found: 1 photo", "sad called happy: 1 photo"]
    assert sections[0].items[0].file == "test/happy/blank.png" and sections[0].items[0].box is None
    thumb = photo_gallery.thumbnail(str(photos), sections[1].items[0], size=64)
    assert thumb.shape == (64, 64, 3)
    assert photo_gallery.thumbnail(str(photos / "gone"), sections[1].items[0]) is None
    assert photo_store.photo_datasets([registry.get_model("always_happy")])[0]["models"] == ["always_happy"]


def test_cli_no_save_writes_nothing(env, capsys):
    tmp, photos = env
    folder = tmp / "models" / "always_happy"
    before = (folder / registry.CARD_FILE).read_text()
    assert main(["evaluate", "--model", "always_happy", "--photos", str(photos), "--no-save"]) == 0
    out = capsys.readouterr().out
    assert (folder / registry.CARD_FILE).read_text() == before and not (folder / registry.PREDICTIONS_DIR).exists()
    for words in ("face found", "accuracy on found", "5-class recall", "macro-F1", "ms/photo", KEY, "75.0%",
                  "skipped 1 photos of emotions the model does not have (angry 1)", "left out 1 unreadable"):
        assert words in out, words


def test_cli_saves_into_the_card_and_compares_crops(env, capsys):
    tmp, photos = env
    assert main(["evaluate", "--model", "always_happy", "--photos", str(photos), "--crop", "all", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    from fer_core.inference.faces import CROP_POLICIES

    assert [r["crop"] for r in results] == list(CROP_POLICIES)
    saved = registry.get_model("always_happy").card["photo_metrics"][results[0]["dataset"]["id"]]
    assert set(saved) == {photo_store.pipeline_key(DEFAULT_DETECTOR, c) for c in CROP_POLICIES}
    assert saved[KEY]["accuracy"] == 0.5


def test_detector_none_classifies_each_photo_whole(env, capsys):
    tmp, photos = env
    assert main(["evaluate", "--model", "always_happy", "--photos", str(photos), "--detector", "none", "--crop", "all",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)  # one pipeline: the crop policy does not apply to a whole photo
    assert (result["detector"], result["crop"]) == ("none", "whole")
    assert result["face_found"] == 1.0 and result["confusion_matrix"] == [[3, 0, 0], [1, 0, 0]]  # the blank one too
    saved = registry.get_model("always_happy").card["photo_metrics"][result["dataset"]["id"]]
    assert set(saved) == {"none/whole"}


@pytest.mark.parametrize("argv, message", [
    (["--photos", "{tmp}/nowhere"], "does not exist"),
    (["--photos", "{tmp}/models"], "no photos in emotion folders"),
    (["--photos", "{tmp}/photos", "--limit", "0"], "--limit must be at least 1"),
    (["--photos", "{tmp}/photos", "--split", "validation"], "--split applies to --data"),
    (["--data", "{tmp}/photos", "--detector", "haar"], "--detector applies to --photos"),
])
def test_cli_bad_input_is_one_line(env, capsys, argv, message):
    tmp, _ = env
    assert main(["evaluate", "--model", "always_happy", *[a.format(tmp=tmp) for a in argv]]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
