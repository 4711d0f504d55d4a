"""Dataset Explorer: class balance, sample faces, mean faces, pixel distributions, data quality
(blank images, exact and near duplicates, cross-split leakage) and the files that failed to load."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.express as px
import streamlit as st

from fer_core import explore, quality
from fer_core.labels import label_set_name
from pages.common import dataset_sidebar, emotion_color_map, label_set_picker

st.set_page_config(page_title="Dataset Explorer", page_icon="🗂️", layout="wide")
st.title("Dataset Explorer")

dataset = dataset_sidebar()
if dataset is None:
    st.info("Nothing to explore yet: choose a dataset folder, .zip or fer2013.csv in the sidebar "
            "(or set `FER_DATA_DIR`).")
    st.stop()
labels = label_set_picker(dataset.classes)
view = dataset if labels == dataset.classes else dataset.subset(labels)
label_set = label_set_name(labels)
st.caption(f"{dataset.source} · layout: {dataset.layout} · {len(view):,} images · label set: {label_set} · "
           f"fingerprint {dataset.fingerprint}")


@st.cache_data(show_spinner="Computing mean faces and distributions …", max_entries=8)
def pixel_summaries(fingerprint: str, labels: tuple, _view):
    """Mean faces and the three distribution charts (figures cached too: plotly express is slow to build)."""
    stats = explore.image_stats(_view)
    colors = emotion_color_map(labels)
    charts = [px.line(explore.intensity_histograms(_view), x="intensity", y="density", color="emotion",
                      color_discrete_map=colors, title="Pixel intensity per class (share of pixels)")]
    for column, title in (("brightness", "Brightness (mean pixel) per image"),
                          ("contrast", "Contrast (pixel std) per image")):
        charts.append(px.line(explore.stat_histograms(stats, column), x=column, y="density", color="emotion",
                              color_discrete_map=colors, title=title))
    return explore.mean_faces(_view), charts


@st.cache_data(show_spinner=False, max_entries=8)
def counts_chart(fingerprint: str, labels: tuple, _view):
    return px.bar(explore.counts_long(_view), x="emotion", y="count", color="split", barmode="group",
                  title="Images per class and split")


@st.cache_data(show_spinner=False, max_entries=8)
def quality_scan(fingerprint: str, labels: tuple, std_threshold: float, max_distance: int, _view):
    bar = st.progress(0.0, text="Scanning for blank images and duplicates …")
    report = quality.scan(_view, std_threshold, max_distance,
                          progress=lambda done, total, msg: bar.progress(done / max(total, 1), text=msg))
    bar.empty()
    return report


def thumbnails(rows, captions, width: int = 72) -> None:
    """A row of dataset images with captions."""
    st.image([view.images[r] for r in rows], caption=list(captions), width=width)


def short(file: str) -> str:
    return Path(file.split(":row")[0]).name + (f":row{file.split(':row')[1]}" if ":row" in file else "")


# ----------------------------------------------------------------------------- class balance
st.header("Class balance")
counts = explore.class_counts(view)
ratio = explore.imbalance_ratio(counts)
cols = st.columns(1 + len(view.split_names))
cols[0].metric("Imbalance ratio (largest ÷ smallest class)", f"{ratio:.1f}×" if np.isfinite(ratio) else "∞")
for col, split in zip(cols[1:], view.split_names):
    r = explore.imbalance_ratio(counts, split)
    col.metric(f"{split} ({int(counts[split].sum()):,} images)", f"{r:.1f}×" if np.isfinite(r) else "∞ (a class is missing)")
left, right = st.columns([2, 3])
left.dataframe(counts, column_config={c: st.column_config.NumberColumn(format="localized") for c in counts.columns})
right.plotly_chart(counts_chart(dataset.fingerprint, labels, view))

# ----------------------------------------------------------------------------- samples
st.header("Sample faces")
seed = st.session_state.setdefault("sample_seed", 0)
if st.button("🔀 Reshuffle samples"):
    st.session_state["sample_seed"] = seed = seed + 1
for emotion, rows in explore.sample_indices(view, per_class=10, seed=seed).items():
    st.markdown(f"**{emotion}** — {int(counts.loc[emotion, 'total']):,} images")
    thumbnails(rows, [short(f) for f in view.files[rows]])

# ----------------------------------------------------------------------------- mean faces and distributions
means, (intensity_chart, brightness_chart, contrast_chart) = pixel_summaries(dataset.fingerprint, labels, view)
st.header("Mean face per class")
st.image([np.clip(means[e], 0, 255).astype(np.uint8) for e in labels], caption=list(labels), width=120)

st.header("Pixel distributions")
st.plotly_chart(intensity_chart)
left, right = st.columns(2)
left.plotly_chart(brightness_chart)
right.plotly_chart(contrast_chart)

# ----------------------------------------------------------------------------- data quality
st.header("Data quality")
st.caption("Blank images (pixel std below a threshold), exact duplicates (identical pixels) and near "
           "duplicates (perceptual-hash distance), within and across splits. A duplicate in another split "
           "is leakage: it inflates validation and test scores.")
c1, c2, c3 = st.columns([1, 1, 1])
std_threshold = c1.number_input("Blank if pixel std below", 0.0, 50.0, quality.BLANK_STD, 0.5)
max_distance = int(c2.number_input("Near duplicate if pHash distance ≤", 0, 16, quality.NEAR_DISTANCE, 2))
scan_key = (dataset.fingerprint, labels, std_threshold, max_distance)
if c3.button("Run quality scan", type="primary"):
    st.session_state["quality_scan"] = scan_key
if st.session_state.get("quality_scan") != scan_key:
    st.info("Press **Run quality scan** to look for blank images, duplicates and leakage "
            f"({len(view):,} images; a few seconds on full FER2013).")
else:
    report = quality_scan(*scan_key, view)
    summary = report.summary()
    metric_cols = st.columns(len(summary))
    for col, (name, value) in zip(metric_cols, summary.items()):
        col.metric(name, f"{value:,}")
    leaking = report.leaking_files()
    if leaking:
        st.warning(f"Leakage: {len(leaking):,} images have an exact or near duplicate in another split.")

    st.subheader(f"Blank / near-constant images ({len(report.blank):,})")
    if len(report.blank):
        shown = report.blank.head(30)
        thumbnails(shown["index"], [f"{short(f)} · std {s:.1f}" for f, s in zip(shown["file"], shown["contrast"])])

    exact = report.exact.sort_values(["leakage", "group"], ascending=[False, True])
    n_groups = exact["group"].nunique()
    st.subheader(f"Exact duplicates ({n_groups:,} groups, {len(exact):,} images)")
    for _, group in exact[exact["group"].isin(exact["group"].unique()[:10])].groupby("group", sort=False):
        tag = "leakage across splits" if group["leakage"].iloc[0] else "same split"
        st.markdown(f"Group E{group['group'].iloc[0]} — {tag}" + (" — labels disagree" if group["conflict"].iloc[0] else ""))
        thumbnails(group["index"], [f"{s} · {e} · {short(f)}" for s, e, f in
                                    zip(group["split"], group["emotion"], group["file"])])
    if n_groups > 10:
        st.caption(f"Showing 10 of {n_groups:,} groups (leakage first); all are in the CSV below.")

    near = report.near.sort_values(["leakage", "distance"], ascending=[False, True])
    st.subheader(f"Near duplicates ({len(near):,} pairs, {int(near['leakage'].sum()):,} across splits)")
    for _, pair in near.head(10).iterrows():
        st.markdown(f"pHash distance {pair['distance']} — "
                    + ("leakage across splits" if pair["leakage"] else "same split")
                    + (" — labels disagree" if pair["conflict"] else ""))
        thumbnails([pair["a_index"], pair["b_index"]],
                   [f"{pair[p + 'split']} · {pair[p + 'emotion']} · {short(pair[p + 'file'])}" for p in ("a_", "b_")])
    if len(near) > 10:
        st.caption(f"Showing 10 of {len(near):,} pairs (leakage first); all are in the CSV below.")

    findings = report.findings()
    st.subheader(f"All findings ({len(findings):,} rows)")
    st.dataframe(findings.drop(columns="index"), hide_index=True)
    st.download_button("Download findings (CSV)", findings.to_csv(index=False).encode(),
                       file_name=f"quality_{dataset.fingerprint}_{label_set}.csv", mime="text/csv")

# ----------------------------------------------------------------------------- load problems
st.header("Load problems")
if dataset.problems:
    st.warning(f"{len(dataset.problems):,} files were skipped or resized while loading.")
    st.dataframe([{"file": p.file, "reason": p.reason} for p in dataset.problems], hide_index=True)
else:
    st.success("Every file was read as a 48×48 image; nothing skipped or resized.")
