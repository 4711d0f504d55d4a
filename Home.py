"""FER Dashboard — home: what the app is, the data and models it found, and where to go next.

Fast first screen: the title goes out before anything else is imported, and nothing here imports
TensorFlow (bench/bench_cold_start.py measures it in a browser).
"""
import streamlit as st

st.set_page_config(page_title="FER Dashboard", page_icon="🙂", layout="wide")
st.title("Facial Emotion Recognition Dashboard")

import pandas as pd  # noqa: E402  (after the title, which then shows while these load)

from fer_core.models.roles import model_roles  # noqa: E402
from fer_core.evaluation.defaults import defaults_rows  # noqa: E402
from fer_core.data.fer_dataset import SUPPORTED_LAYOUTS  # noqa: E402
from fer_core.base.runtime import quick_device_description  # noqa: E402
from pages.common import dataset_sidebar, model_infos  # noqa: E402

st.markdown(
    "Explore FER datasets, compare trained CNNs on the same images, see what each model predicts "
    "for the faces in a photo — and where it looked (Grad-CAM, occlusion) — and classify a webcam stream live. "
    "Every number shown comes from a real evaluation recorded in the model's card."
)

cols = st.columns(6)
for col, (page, label, icon) in zip(cols, [
    ("pages/1_Dataset_Explorer.py", "Dataset Explorer", "📊"),
    ("pages/2_Model_Comparison.py", "Model Comparison", "🏆"),
    ("pages/3_Image_Prediction.py", "Image Prediction", "🖼️"),
    ("pages/4_Live_Webcam.py", "Live Webcam", "🎥"),
    ("pages/5_Video_Analysis.py", "Video Analysis", "🎞️"),
    ("pages/6_Responsible_Use.py", "Responsible Use", "⚖️"),
]):
    col.page_link(page, label=label, icon=icon)
st.caption("Beyond the pages: `python -m fer_core serve` is a REST API (`curl -F image=@photo.jpg "
           "localhost:8000/v1/predict`, docs at /docs), and `python -m fer_core batch photos/ --out results.parquet` "
           "scores folders, zips and videos into one row per face, here or on a Ray cluster (`--ray`).")


st.subheader("Compute")
st.write(f"Models compute on: **{quick_device_description()}**")  # read from the system: no TensorFlow import

st.subheader("Dataset")
dataset = dataset_sidebar()
if dataset is not None:
    splits = ", ".join(f"{s} {int((dataset.splits == s).sum()):,}" for s in dataset.split_names)
    st.write(f"**{dataset.source}** — {len(dataset):,} images ({splits}), layout `{dataset.layout}`, "
             f"{len(dataset.classes)} emotions: {', '.join(dataset.classes)}.")
    if dataset.problems:
        st.warning(f"{len(dataset.problems):,} files were skipped or resized while loading — "
                   "see the Dataset Explorer for the list.")
else:
    st.caption("Supported layouts: " + "; ".join(SUPPORTED_LAYOUTS) + ".")

st.subheader("Models")
models = model_infos()
if not models:
    st.info("No trained models found under `models/`. Train one with "
            "`python -m fer_core train --arch fer_resvgg --data <dataset folder>`.")
else:
    st.markdown("**Defaults** — what classifies your faces unless you pick another model, and whose labels it "
                "learned (ten annotators per face beat one: see Responsible Use):")
    st.dataframe(pd.DataFrame(defaults_rows(models)), hide_index=True, width="stretch", key="defaults",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("FER+ crowd accuracy", "FER2013-label accuracy", "real-photo accuracy")})
    rows, roles = [], model_roles(models)
    for m in models:
        val = m.metrics("validation") or {}
        rows.append({"model": m.name, "id": m.id, "labels": m.label_set, "role": roles[m.id],
                     "params": m.card.get("params"), "size (MB)": round(m.card.get("file_size_bytes", 0) / 1e6, 2),
                     "validation accuracy": val.get("accuracy"), "macro-F1": val.get("macro_f1"),
                     "evaluated on": val.get("split_description", "not evaluated yet")})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"validation accuracy": st.column_config.NumberColumn(format="%.3f"),
                                "macro-F1": st.column_config.NumberColumn(format="%.3f")})
    st.caption("Accuracy is measured by `python -m fer_core evaluate` and stored in each model's card; "
               "the Model Comparison page has the full picture.")
