"""Dataset Explorer: class balance, sample faces, mean faces, pixel distributions, data quality
(blank images, exact and near duplicates, cross-split leakage), FER+ crowd labels (annotator agreement,
label × majority, disputed faces), likely label errors (scored against the crowd where votes exist) and
an embedding map as a model sees the data, and the files that failed to load."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.express as px
import streamlit as st

from fer_core.evaluation import embeddings
from fer_core.data import explore
from fer_core.evaluation import label_issues
from fer_core.data import quality
from fer_core.models import registry
from fer_core.data import votes as crowd_votes
from fer_core.data.crowd import agreement_frame, disputed_faces, finder_vs_crowd, label_vs_majority
from fer_core.base.labels import label_set_name
from pages.common import classifier, dataset_sidebar, emotion_color_map, label_set_picker, model_infos

st.set_page_config(page_title="Dataset Explorer", page_icon="🗂️", layout="wide")
st.title("Dataset Explorer")

dataset = dataset_sidebar()
if dataset is None:
    st.info("Nothing to explore yet: choose a dataset folder, .zip or fer2013.csv in the sidebar "
            "(or set `FER_DATA_DIR`).")
    st.stop()


@st.cache_resource(show_spinner="Reading FER+ votes …", max_entries=4)
def with_votes(fingerprint: str, source: str, votes_file: str, _dataset):
    """The dataset with its FER+ votes (found beside it, or the named file) attached, once per file."""
    return crowd_votes.attach_votes(_dataset, votes_file or None)


with st.sidebar:
    votes_file = st.text_input("FER+ votes file (optional)", key="votes_file",
                               help="ferplus_votes.csv or FER+'s fer2013new.csv; by default one beside the "
                                    "dataset is used")
try:
    dataset = with_votes(dataset.fingerprint, dataset.source, votes_file.strip(), dataset)
except crowd_votes.VotesError as err:
    st.error(f"Could not use the FER+ votes: {err}")
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


@st.cache_data(show_spinner=False, max_entries=4)
def model_view(fingerprint: str, labels: tuple, model_id: str, stamp: float, split: str, size: int,
               in_memory: bool, _view):
    """Penultimate features of a stratified sample (disk-cached unless the data is an upload) and
    cleanlab's label-error ranking of it; computed once per dataset, model and sample."""
    bar = st.progress(0.0, text="Computing features …")
    report = lambda done, total, msg: bar.progress(done / max(total, 1), text=msg)  # noqa: E731
    info = next(m for m in model_infos() if m.id == model_id)
    rows = embeddings.sample_rows(_view, split, size)
    feats = embeddings.dataset_features(_view, rows, classifier(info), cache=not in_memory, progress=report)
    issues = label_issues.rank_label_issues(_view, feats, progress=report)
    bar.empty()
    return feats, issues


@st.cache_data(show_spinner="Laying out the embedding map …", max_entries=8)
def embedding_chart(view_key: tuple, method: str, color_by: str, _view, _feats, _issues):
    """The 2-D map of the sampled features as a plotly scatter; each point carries its dataset row."""
    coords, used = embeddings.project_2d(_feats.features, method)
    frame = embeddings.embedding_frame(_view, _feats, coords, _issues)
    colors = {"yes": "#d62728", "no": "#c7c7c7"} if color_by == "likely label error" else \
        emotion_color_map(sorted(set(frame[color_by]))) if color_by in ("label", "prediction") else None
    fig = px.scatter(frame, x="x", y="y", color=color_by, color_discrete_map=colors, custom_data=["row"],
                     hover_data={"x": False, "y": False, "file": True, "label": True, "prediction": True,
                                 "suggested": True, "split": True},
                     title=f"{len(frame):,} images by {_feats.model_id}'s penultimate features "
                           f"({embeddings.METHODS[used]})")
    fig.update_traces(marker={"size": 5, "opacity": 0.8})
    return fig.update_layout(xaxis_title=None, yaxis_title=None, dragmode="lasso")


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
    col.metric(f"{split} ({int(counts[split].sum()):,} images)",
               f"{r:.1f}×" if np.isfinite(r) else "∞ (a class is missing)")
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
        st.markdown(f"Group E{group['group'].iloc[0]} — {tag}"
                    + (" — labels disagree" if group["conflict"].iloc[0] else ""))
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

# ----------------------------------------------------------------------------- crowd labels (FER+)
st.header("Crowd labels (FER+)")


@st.cache_data(show_spinner="Comparing labels with the crowd …", max_entries=8)
def crowd_views(key: tuple, _part):
    """Agreement per emotion, label × majority counts and the most disputed faces of one split."""
    return (agreement_frame(_part), label_vs_majority(_part),
            disputed_faces(_part, 30))


if view.votes is None:
    st.info("No FER+ votes for this dataset: put `ferplus_votes.csv` (or FER+'s `fer2013new.csv` beside a "
            "fer2013.csv) next to it, or name a votes file in the sidebar.")
else:
    votes_info = view.votes_info
    st.caption(f"Ten annotators per face (Barsoum et al., 2016), from {Path(votes_info['file']).name} (fingerprint "
               f"{votes_info['fingerprint']}). {crowd_votes.MAJORITY_PROTOCOL}. "
               "Contempt, which FER2013 lacks, counts as disgust where labels are compared, "
               "and is its own column in the matrix.")
    crowd_split = st.radio("Split", ["all"] + list(view.split_names), horizontal=True, key="crowd_split")
    part = view if crowd_split == "all" else view.split(crowd_split)
    agreement, matrix, disputed = crowd_views((dataset.fingerprint, labels, crowd_split, votes_info["fingerprint"]),
                                              part)
    has = int(agreement["faces with votes"].sum())
    agrees = float((agreement["majority agrees"] * agreement["faces with votes"]).sum() / max(has, 1))
    c1, c2, c3 = st.columns(3)
    c1.metric("faces with votes", f"{has:,}", help=f"{len(part) - has:,} have none (no FER+ image)")
    c2.metric("FER+ majority = label", f"{agrees:.1%}")
    c3.metric("no majority", f"{int(matrix[crowd_votes.NO_MAJORITY].sum()):,}")
    left, right = st.columns(2)
    left.plotly_chart(px.bar(agreement, x="emotion", y=["votes for the label", "majority agrees", "top answer's share"],
                             barmode="group", title="Annotator agreement per emotion (share)"), key="crowd_agreement")
    right.plotly_chart(px.imshow(matrix, text_auto=True, color_continuous_scale="Blues", aspect="auto",
                                 title="Dataset label (rows) × FER+ majority (columns)"), key="crowd_matrix")
    st.dataframe(agreement, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.3f")
        for c in agreement.columns if c not in ("emotion", "faces with votes")})
    st.subheader("Most disputed faces")
    st.caption("Highest spread of the ten answers (entropy, 1 = every answer different); label → FER+ majority.")
    st.image([part.images[r] for r in disputed.index], width=72,
             caption=[f"{lab} → {maj}" for lab, maj in zip(disputed["label"], disputed["FER+ majority"])])
    st.dataframe(disputed, hide_index=True)

# ----------------------------------------------------------------------------- likely label errors
st.header("Likely label errors")
st.caption("Images whose given emotion a model's view of them disagrees with: cleanlab's confident learning on "
           "out-of-sample probabilities of a 5-fold logistic regression on a registered model's penultimate-layer "
           "features, for a stratified sample. The same features draw the embedding map below.")
usable = [m for m in model_infos() if embeddings.can_embed(m)]
result = None
if not usable:
    st.info("No registered Keras model to take features from; train one with `python -m fer_core train`.")
else:
    ids = [m.id for m in usable]
    try:
        preferred = embeddings.default_feature_model(labels).id
    except registry.RegistryError:  # no suitable default: the first usable model
        preferred = ids[0]
    preferred = preferred if preferred in ids else ids[0]
    splits = ["all"] + list(view.split_names)
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    model_id = c1.selectbox("Features of model", ids, index=ids.index(preferred))
    split = c2.selectbox("Split", splits, index=splits.index("validation") if "validation" in splits else 0,
                         help="validation is the honest choice for a model trained on this dataset's train split")
    size = int(c3.number_input("Sample size", 100, embeddings.MAX_SAMPLE, embeddings.DEFAULT_SAMPLE, 100,
                               help="stratified by split and emotion"))
    in_memory = st.session_state.get("dataset_zip") is not None  # uploads stay in memory: no disk cache
    info = next(m for m in usable if m.id == model_id)
    view_key = (dataset.fingerprint, labels, model_id, info.model_file.stat().st_mtime, split, size, in_memory)
    if c4.button("Find label errors", type="primary"):
        st.session_state["model_view"] = view_key
    if st.session_state.get("model_view") != view_key:
        st.info(f"Press **Find label errors** to compute {model_id}'s features for up to {size:,} {split} images "
                "(once; then cached), rank their labels and draw the embedding map.")
    else:
        try:
            result = model_view(*view_key, view)
        except (ValueError, LookupError) as err:
            st.error(f"Could not analyse the labels: {err}")

if result is not None:
    feats, issues = result
    flagged = issues[issues["label_issue"]]
    m1, m2, m3 = st.columns(3)
    m1.metric("images checked", f"{len(issues):,}")
    m2.metric("likely label errors", f"{len(flagged):,}")
    m3.metric("share flagged", f"{len(flagged) / max(len(issues), 1):.1%}")
    crowd = finder_vs_crowd(issues, view)
    if crowd and crowd["faces_with_majority"]:
        c1, c2, c3 = st.columns(3)
        c1.metric("precision against the crowd", f"{crowd['precision']:.1%}",
                  help="share of flagged faces whose label differs from the FER+ majority")
        c2.metric("recall against the crowd", f"{crowd['recall']:.1%}",
                  help="share of faces labelled otherwise than the FER+ majority that were flagged")
        c3.metric("label ≠ FER+ majority",
                  f"{crowd['label_differs_from_majority']:,} of {crowd['faces_with_majority']:,}",
                  help=f"flagging at random would reach a precision of {crowd['base_rate']:.1%}")
        st.caption(f"Scored on the {crowd['faces_with_majority']:,} checked faces with a FER+ majority "
                   f"in the label set (contempt {crowd['contempt']}). Flagging at random would reach a precision of "
                   f"{crowd['base_rate']:.1%}.")
    if issues.attrs.get("caveat"):
        st.warning(issues.attrs["caveat"])
    if issues.attrs.get("skipped_classes"):
        st.caption("Left out (fewer than 2 images in the sample): " + ", ".join(issues.attrs["skipped_classes"]))
    given = st.multiselect("Given label", labels, default=[], placeholder="every class",
                           help="show only errors among images labelled with these emotions")
    shown = flagged[flagged["given_label"].isin(given)] if given else flagged
    st.subheader(f"Ranked likely errors ({len(shown):,})")
    if len(shown):
        top = shown.head(40)
        thumbnails(top.index, [f"{g} → {s} · {sc:.2f}" for g, s, sc in
                               zip(top["given_label"], top["suggested_label"], top["score"])])
        if len(shown) > 40:
            st.caption(f"Showing the 40 most likely of {len(shown):,}; all are in the table and CSV.")
        st.dataframe(shown.drop(columns="label_issue"), hide_index=True, column_config={
            "score": st.column_config.ProgressColumn("score", help="1 − out-of-sample probability of the given label",
                                                     format="%.3f", min_value=0.0, max_value=1.0)})
        st.download_button("Download likely label errors (CSV)", shown.to_csv(index=False).encode(),
                           file_name=f"label_issues_{dataset.fingerprint}_{feats.model_id}.csv", mime="text/csv",
                           help="its `file` column feeds `python -m fer_core train ... --exclude FILE.csv`")
    else:
        st.success("No likely label errors among these images.")

# ----------------------------------------------------------------------------- embedding map
st.header("Embedding map")
if result is None:
    st.info("The map uses the features computed for **Find label errors** above.")
else:
    st.caption("Each dot is an image placed by its penultimate features, reduced to 2-D. Hover for the file "
               "and labels; select points (box or lasso) to see their faces.")
    c1, c2 = st.columns(2)
    method = c1.radio("Projection", list(embeddings.METHODS), format_func=embeddings.METHODS.get,
                      horizontal=True, key="embedding_method",
                      help="UMAP keeps neighbourhoods; PCA is instant; t-SNE is slowest")
    color_by = c2.radio("Colour by", ["label", "prediction", "split", "likely label error"], horizontal=True)
    event = st.plotly_chart(embedding_chart(view_key, method, color_by, view, feats, issues), on_select="rerun",
                            selection_mode=("points", "box", "lasso"), key="embedding_map")
    picked = [int(p["customdata"][0]) for p in (event.selection.points if event else []) if p.get("customdata")]
    if picked:
        st.subheader(f"Selected images ({len(picked):,})")
        thumbnails(picked[:60], [f"{view.label_names()[r]} · {short(view.files[r])}" for r in picked[:60]])
        if len(picked) > 60:
            st.caption(f"Showing 60 of {len(picked):,} selected images.")
    else:
        st.caption("Select points on the map to see their faces here.")

# ----------------------------------------------------------------------------- load problems
st.header("Load problems")
if dataset.problems:
    st.warning(f"{len(dataset.problems):,} files were skipped or resized while loading.")
    st.dataframe([{"file": p.file, "reason": p.reason} for p in dataset.problems], hide_index=True)
else:
    st.success("Every file was read as a 48×48 image; nothing skipped or resized.")
