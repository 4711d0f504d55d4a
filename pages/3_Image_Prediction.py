"""Image Prediction: find the faces in a photo, classify their emotion with any registered model,
and see why with Grad-CAM or occlusion. Photos are processed in memory only, never written to disk."""
from __future__ import annotations

import hashlib
import json

import pandas as pd
import plotly.express as px
import streamlit as st

from fer_core.inference import gradcam as cam
from fer_core.models import registry
from fer_core.models.roles import featured_models, model_roles
from fer_core.inference.faces import CROP_POLICIES, DEFAULT_CROP, DEFAULT_DETECTOR, DEFAULT_MIN_SIZE, DETECTORS
from fer_core.inference.images import SAMPLES, ImageError, encode_png, read_image, sample_image
from fer_core.inference.predict import Classifier, analyze_image, annotate, compare_models
from fer_core.models.tta import TTA_MODES
from pages.common import CROP_NAMES, DETECTOR_NAMES, TTA_NAMES, classifier, emotion_color_map, model_infos

st.set_page_config(page_title="Image Prediction", page_icon="🙂", layout="wide")
st.title("Image Prediction")
st.caption("Faces are detected, levelled and framed as FER2013 frames its faces (or cut with a margin), and "
           "classified together in one batch. "
           "Uploads stay in memory: nothing is written to disk.")

WHOLE_NAMES = {None: "when it looks like a face crop", True: "always", False: "never"}
METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "occlusion": "Occlusion"}
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]

infos = model_infos()
if not infos:
    st.info("No trained models are registered yet. Train one with "
            "`python -m fer_core train --arch fer_resvgg --data DIR`; it appears here automatically.")
    st.stop()
by_id = {i.id: i for i in infos}
roles = model_roles(infos)


def classifier_of(model_id: str) -> Classifier:
    return classifier(by_id[model_id])


def loadable(model_ids) -> tuple[list[Classifier], list[str]]:
    """The classifiers that load, and a note for each that does not (a broken file must not break the page)."""
    ok, broken = [], []
    for m in model_ids:
        try:
            ok.append(classifier_of(m))
        except Exception as err:  # noqa: BLE001 — any load failure is reported, never a traceback
            broken.append(f"{m}: {err}")
    return ok, broken


@st.cache_data(show_spinner="Detecting and classifying faces …", max_entries=32)
def analyze(digest: str, _data: bytes, model_id: str, detector: str, crop: str, min_size: int, tta: str | None,
            whole: bool | None):
    image = read_image(_data)
    return image, analyze_image(image, classifier_of(model_id), detector, tta=tta, crop=crop,
                                whole_image_if_no_face=whole, min_size=min_size)


@st.cache_data(show_spinner=False, max_entries=32)
def comparison_table(digest: str, settings: tuple, models: tuple, tta: str | None, _crops,
                     _classifiers, _answered) -> pd.DataFrame:
    return pd.DataFrame(compare_models(_crops, _classifiers, tta=tta, answered=_answered))


@st.cache_data(show_spinner="Loading the Keras model Grad-CAM differentiates …", max_entries=16)
def layer_names(model_id: str, stamp: float) -> list[str]:
    return cam.conv_layers(cam.gradient_model(classifier_of(model_id))) or ["(none)"]


def model_label(m: str) -> str:
    return f"{by_id[m].name} · {by_id[m].label_set}" + (f" ({roles[m]})" if roles[m] else "")


@st.cache_data(show_spinner="Computing the heatmap …", max_entries=256)
def heatmap(digest: str, settings: tuple, face: int, class_index: int, layer: str, method: str, _crop):
    return cam.gradcam_face(classifier_of(settings[0]), _crop, class_index, layer, method)


# ----------------------------------------------------------------------------- settings
with st.sidebar:
    st.subheader("Model")
    ids = [i.id for i in infos]
    model_id = st.selectbox("Model", ids, index=ids.index(registry.pick_default(infos).id), key="model",
                            format_func=model_label)
    featured = featured_models(infos, accurate_for=registry.pick_default(infos).labels)
    compare = st.multiselect("Compare with", ids, default=[m.id for m in featured],
                             key="compare", format_func=model_label,
                             help="Models asked about the same faces below the explanations. Default: each label "
                                  "set's default and the main label set's most accurate model (as its int8 edge "
                                  "export, which answers the same without TensorFlow). Each loads once per server "
                                  "process.")
    st.subheader("Faces")
    detector = st.selectbox("Detector", DETECTORS, format_func=DETECTOR_NAMES.get, key="detector",
                            index=DETECTORS.index(DEFAULT_DETECTOR))
    crop_policy = st.selectbox("Face crop", tuple(CROP_POLICIES), format_func=CROP_NAMES.get, key="crop",
                        index=tuple(CROP_POLICIES).index(DEFAULT_CROP), help="How a face becomes the model's input.")
    min_size = st.slider("Minimum face size (pixels)", 12, 256, DEFAULT_MIN_SIZE, step=4, key="min_size")
    tta = st.selectbox("Test-time augmentation", (None,) + TTA_MODES, key="tta",
                       format_func=lambda m: TTA_NAMES[m] if m else "each model's default",
                       help="Average each face's probabilities over several views. The default is what each "
                            "model's card sets (e.g. flip for an ensemble).")
    whole = st.selectbox("Classify the whole image if no face is found", (None, True, False), key="whole",
                         format_func=WHOLE_NAMES.get,
                         help="For photos that are already a face crop, e.g. FER2013's 48×48 images. By default, "
                              "when the photo looks like one: at most 160 px, about square, not blank.")
loaded, broken = loadable([model_id])
if broken:
    st.error(f"Could not load model {broken[0]}. Pick another model in the sidebar.")
    st.stop()
clf = loaded[0]
settings = (model_id, by_id[model_id].model_file.stat().st_mtime, detector, crop_policy, min_size, tta, whole)

# ----------------------------------------------------------------------------- input
source = st.radio("Photo", ["Upload", "Camera", "Sample"], horizontal=True, key="source")
photos: list[tuple[str, bytes]] = []
if source == "Upload":
    files = st.file_uploader("Photos", type=IMAGE_TYPES, accept_multiple_files=True, key="uploads")
    photos = [(f.name, f.getvalue()) for f in files or []]
elif source == "Camera":
    shot = st.camera_input("Take a snapshot")
    photos = [("camera snapshot", shot.getvalue())] if shot is not None else []
else:
    title = st.selectbox("Sample photo (bundled with scikit-image)", list(SAMPLES), key="sample")
    photos = [(title, encode_png(sample_image(title)))]
if not photos:
    st.info("Upload one or more photos, take a camera snapshot, or pick a bundled sample.")
    st.stop()

# ----------------------------------------------------------------------------- results
for n, (name, data) in enumerate(photos):
    if len(photos) > 1:
        st.header(name)
    digest = hashlib.sha256(data).hexdigest()
    try:
        image, analysis = analyze(digest, data, model_id, detector, crop_policy, min_size, tta, whole)
    except ImageError as err:
        st.error(f"Could not read {name}: {err}")
        continue
    photo_col, summary_col = st.columns([3, 2])
    if not analysis.faces:
        photo_col.image(image, caption=name, width="stretch")
        summary_col.warning(f"No face found in {name}. Try another detector, a smaller minimum face size, or "
                            "“Classify the whole image … always” in the sidebar.")
        continue

    annotated = annotate(image, analysis)
    found = "classified as one face (no face detected)" if analysis.whole_image else \
        f"{len(analysis.faces)} face(s) found by {DETECTOR_NAMES[detector].split(' (')[0]}"
    photo_col.image(annotated, caption=f"{name} — {found}, model {model_id}", width="stretch")
    with st.spinner(f"Loading and asking {', '.join(compare)} …" if compare else "…"):
        others, broken = loadable(compare)
        table = comparison_table(digest, settings, tuple((c.id, by_id[c.id].model_file.stat().st_mtime)
                                                         for c in others), tta, analysis.crops, others,
                                 {model_id: analysis.probabilities})
    doc = {"file": name, **analysis.to_dict(), "all_models": table.astype(object).where(table.notna(), None)
           .to_dict(orient="records")}
    with summary_col:
        st.dataframe(pd.DataFrame([{"face": i, "emotion": f.label, "confidence": f.confidence,
                                    "detector score": f.score, "box (x, y, w, h)": str(f.box)}
                                   for i, f in enumerate(analysis.faces, start=1)]),
                     hide_index=True, column_config={
                         "confidence": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
                         "detector score": st.column_config.NumberColumn(format="%.3f")})
        stem = name.rsplit(".", 1)[0].replace(" ", "_")
        st.download_button("Download annotated PNG", encode_png(annotated), f"{stem}_annotated.png", "image/png",
                           key=f"png_{n}")
        st.download_button("Download results JSON", json.dumps(doc, indent=1), f"{stem}_emotions.json",
                           "application/json", key=f"json_{n}")
        with st.expander("Results JSON"):
            st.json(doc, expanded=False)

    colors = emotion_color_map(clf.labels)
    # an edge export (LiteRT / ONNX) has no gradients: Grad-CAM explains its parent's Keras model, loaded
    # (with TensorFlow) only when someone picks it; occlusion, the export's default, explains the export itself
    missing = cam.gradients_unavailable(clf)
    methods = ("occlusion",) if missing else cam.METHODS
    exported = by_id[model_id].format != "keras"
    if missing:
        st.info(f"Grad-CAM is not available: {missing}. Occlusion below explains the export itself: it hides one "
                "patch of the face at a time and measures how much the class's probability drops.")
    elif exported:
        st.caption(f"Occlusion explains this {by_id[model_id].format} export itself. Grad-CAM is computed on "
                   f"{clf.model.parent_id}, the Keras model it was converted from (a converted model has no "
                   "gradients; the first Grad-CAM loads TensorFlow). The predictions above are the export's own.")
    # an explanation runs the model ~120 times per face (occlusion) or loads TensorFlow (Grad-CAM): on a group
    # photo, one face at a time keeps the first answer fast
    explain = 1
    if len(analysis.faces) > 1:
        explain = st.selectbox("Explain face", range(1, len(analysis.faces) + 1), key=f"explain_{n}",
                               format_func=lambda i: f"Face {i}: {analysis.faces[i - 1].label}",
                               help="Which face's heatmap to compute; the others keep their probabilities.")
    explained = image
    for i, (face, crop) in enumerate(zip(analysis.faces, analysis.crops), start=1):
        st.subheader(f"Face {i}: {face.label} {face.confidence:.0%}")
        seen, left, right = st.columns([1, 3, 2])
        size = clf.preprocessing.input_size
        seen.image(clf.preprocessing.prepare_uint8([crop])[0], width=96,
                   caption=f"what the model saw: {face.crop} crop, {size}×{size}")
        probs = pd.DataFrame({"emotion": list(face.probabilities), "probability": list(face.probabilities.values())})
        fig = px.bar(probs, x="probability", y="emotion", orientation="h", color="emotion",
                     color_discrete_map=colors, range_x=[0, 1], text_auto=".1%")
        fig.update_layout(showlegend=False, height=60 + 32 * len(probs), margin=dict(l=0, r=0, t=10, b=0),
                          yaxis=dict(categoryorder="array", categoryarray=list(reversed(clf.labels))))
        left.plotly_chart(fig, key=f"bars_{n}_{i}")
        if i != explain:
            right.caption("Pick this face in “Explain face” above to see which parts of it drove the answer.")
            continue
        with right:
            c1, c2 = st.columns(2)
            target = c1.selectbox("Explain class", clf.labels, index=clf.labels.index(face.label),
                                  key=f"cam_class_{n}_{i}")
            method = c2.radio("Method", methods, key=f"cam_method_{n}_{i}", format_func=METHOD_NAMES.get,
                              index=methods.index("occlusion") if exported else 0,
                              help="Grad-CAM weighs a layer's feature maps by their gradients. Occlusion needs "
                                   "no gradients: it hides one patch at a time (no TTA) and maps the drop in "
                                   "the class's probability.")
            layers = [] if method == "occlusion" else layer_names(model_id, settings[1])
            layer = st.selectbox("Layer", layers or ["(not used by occlusion)"], index=max(len(layers) - 1, 0),
                                 key=f"cam_layer_{n}_{i}", disabled=method == "occlusion",
                                 help="Default: the last convolutional block, the usual Grad-CAM choice; for an "
                                      "ensemble, every member's map for the ensemble's class, averaged.")
            where = "" if method == "occlusion" else f" @ {layer}"
            try:
                heat = heatmap(digest, settings, i, clf.labels.index(target), layer, method, crop)
            except ValueError as err:
                st.warning(f"{METHOD_NAMES[method]} is not available for this layer: {err}")
            else:
                st.image([crop, cam.overlay(crop, heat)], width=160,
                         caption=["face crop", f"{METHOD_NAMES[method]}: {target}{where}"])
                explained = cam.overlay_through(explained, heat, analysis.crop_matrices[i - 1], crop.shape)
    with st.expander("Heatmap on the whole photo"):
        st.image(explained, caption="the explained face's heatmap for its selected class, method and layer",
                 width="stretch")

    st.subheader("The compared models on these faces")
    if broken:
        st.warning("Skipped models that could not be loaded: " + "; ".join(broken))
    if table.empty:
        st.caption("Pick models to compare in the sidebar (“Compare with”).")
        continue
    st.dataframe(table, hide_index=True, column_config={
        "confidence": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
        **{e: st.column_config.NumberColumn(format="%.3f") for e in table.columns[4:]}})
    st.caption("Each model reports probabilities for its own label set; “None” marks an emotion a model does "
               "not predict.")
