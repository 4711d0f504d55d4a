"""Model Comparison: leaderboard, training curves, per-class F1, confusion matrices, calibration,
McNemar tests and misclassified faces — every number from the models' saved evaluations."""
from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from fer_core.evaluation import comparison, leaderboard, metrics
from fer_core.evaluation.latency import LATENCY_BATCH
from fer_core.evaluation.predictions import EVAL_SPLITS, Predictions, load_predictions, predictions_path
from fer_core.evaluation import studies
from fer_core.evaluation import photo_gallery, photo_store
from fer_core.evaluation import robustness as rb
from fer_core.evaluation import exports
from fer_core.evaluation import students as students_table
from fer_core.data.datasets import default_data_dir
from fer_core.base.labels import label_set_name
from fer_core.models.groups import DEFAULTS, GROUP_HELP, non_empty_groups
from pages.common import dataset_sidebar, model_infos

st.set_page_config(page_title="Model Comparison", page_icon="📊", layout="wide")
st.title("Model Comparison")

DATA_HINT = str(default_data_dir() or "DIR")
infos = model_infos()
if not infos:
    st.info("No trained models yet. Train one with `python -m fer_core train --arch fer_resvgg --data DIR`, "
            "then score it with `python -m fer_core evaluate --model ID --data DIR`.")
    st.stop()


@st.cache_data(show_spinner="Loading saved predictions …", max_entries=32)
def saved_predictions(model_id: str, split: str, dataset_key: str, stamp: float, _info,
                      _dataset) -> Predictions | None:
    return load_predictions(_info, split, _dataset)


def predictions_of(info, split: str, dataset) -> Predictions | None:
    path = predictions_path(info, split, dataset)
    key = f"{(dataset or {}).get('id')}|{(dataset or {}).get('name')}"
    return saved_predictions(info.id, split, key, path.stat().st_mtime, info, dataset) if path.exists() else None


@st.cache_data(show_spinner="Loading the per-photo predictions …", max_entries=16)
def saved_photo_misses(model_id: str, dataset_id: str, pipeline: str, stamp, _info) -> dict | None:
    pred = photo_store.load_photo_predictions(_info, dataset_id, pipeline)
    if pred is None:
        return None
    return {"source": pred.meta["dataset"]["source"], "sections": photo_gallery.miss_gallery(pred)}


@st.cache_data(show_spinner=False, max_entries=512)
def photo_thumbnail(source: str, file: str, box, label):
    return photo_gallery.thumbnail(source, photo_gallery.GalleryItem(file, box, "", label))


# ----------------------------------------------------------------------------- filters
with st.sidebar:
    st.subheader("Models")
    groups = non_empty_groups(infos)
    group = st.selectbox("Group", list(groups), index=list(groups).index(DEFAULTS) if DEFAULTS in groups else 0,
                         key="group", format_func=lambda g: f"{g} ({len(groups[g])})",
                         help="One group of models worth comparing at a time: "
                              + "; ".join(f"**{g}**: {GROUP_HELP[g]}" for g in groups) + ".")
    grouped = [i for i in infos if i.id in groups[group]]
    label_sets = list(dict.fromkeys(i.label_set for i in grouped))
    label_set = st.selectbox("Label set", label_sets, format_func=lambda s: (
        f"{s} ({len(next(i.labels for i in grouped if i.label_set == s))} emotions)"))
    split = st.radio("Evaluation split", EVAL_SPLITS, horizontal=True, key="split",
                     help="`test` is FER2013's PrivateTest where the data has it; otherwise the saved "
                          "evaluation says which images were measured.")
    candidates = [i for i in grouped if i.label_set == label_set]
    datasets = leaderboard.dataset_choices(candidates, split)
    dataset = st.selectbox("Dataset", datasets, format_func=lambda d: d["label"], key="dataset",
                           help="Results are per dataset and never mixed; the default is the dataset most "
                                "models were evaluated on.") if datasets else None
    chosen = st.multiselect("Models", [i.id for i in candidates], default=[i.id for i in candidates])
    photo_sets = photo_store.photo_datasets(candidates)
    photo_set = st.selectbox("Real-photo set", photo_sets, key="photo_set", format_func=lambda g: (
        f"{g['name']} ({g['n_photos']:,} photos, id {g['id'][:8]})"), help="Class folders of real photos measured "
        "with `evaluate --photos` (the 'real photos' column and the gallery of misses)") if photo_sets else None
selected = [i for i in candidates if i.id in chosen]
if not selected:
    st.info("Pick at least one model in the sidebar.")
    st.stop()
evaluated = [i for i in selected if leaderboard.is_evaluated(i, split, dataset)]

# ----------------------------------------------------------------------------- leaderboard
data_name = dataset["name"] if dataset else "no dataset yet"
st.header(f"Leaderboard — {label_set_name(selected[0].labels)}, {data_name}, {split} split")
st.caption(f"Group **{group}**: {GROUP_HELP[group]} (pick another group in the sidebar).")
board = leaderboard.leaderboard(selected, split, dataset, photos=(photo_set or {}).get("id"))
st.dataframe(board, hide_index=True, column_config={
    "params": st.column_config.NumberColumn(format="localized"),
    "size MB": st.column_config.NumberColumn(format="%.2f"),
    **{c: st.column_config.NumberColumn(format="%.4f") for c in ("accuracy", "macro-F1", "log-loss", "ECE")},
    **{c: st.column_config.NumberColumn(format="%.4f", help="Wilson 95% interval of the accuracy on this many "
                                        "images: gaps inside it may be noise; the McNemar tests below compare two "
                                        "models on the same images") for c in ("CI low", "CI high")},
    "clean accuracy": st.column_config.NumberColumn(format="%.4f", help="accuracy on the images of the split "
                                                    "with no exact or near duplicate in the Training split"),
    "FER+ accuracy": st.column_config.NumberColumn(format="%.4f", help="accuracy against the FER+ crowd majority "
                                                   "(ten annotators per face) on the 'FER+ faces' that have one in "
                                                   "the model's emotions; 'accuracy' is against the dataset's labels"),
    "real photos": st.column_config.NumberColumn(format="%.4f", help="accuracy through the whole photo pipeline "
                                                 "(detect, crop, classify; a photo with no face found counts as "
                                                 "wrong) on the real-photo set of the sidebar; blank: not measured"),
    "labels learned": st.column_config.TextColumn(help="whose labels the model learned: FER2013's own (one "
                                                 "annotator per face) or the FER+ crowd's (ten); the defaults learn "
                                                 "from the crowd (see Responsible Use)"),
    "latency ms/face": st.column_config.NumberColumn(format="%.2f"),
    "train min": st.column_config.NumberColumn(format="%.1f", help="wall-clock training time, including the "
                                               "model it was fine-tuned from (--init-from) and an ensemble's "
                                               "members, on the devices in 'trained on'"),
})
missing = [i.id for i in selected if not leaderboard.is_evaluated(i, split, dataset)]
if missing:
    st.warning(f"Not evaluated on the {split} split of {data_name}: {', '.join(missing)}. Run:")
    hint = (dataset or {}).get("source") or DATA_HINT
    st.code("\n".join(f"python -m fer_core evaluate --model {m} --data {hint} --split {split}" for m in missing),
            language="bash")
measured = sorted({i.metrics(split, dataset).get("split_description", split) for i in evaluated})
if measured:
    st.caption("Measured on: " + "; ".join(measured) + ". Latency: median single-face call on "
               + "; ".join(sorted({i.metrics(split, dataset).get("device", "?") for i in evaluated})) + ".")
if len(evaluated) >= 2:
    scored = board.dropna(subset=["accuracy"])
    speed, cost = st.columns(2)
    speed.plotly_chart(px.scatter(scored, x="latency ms/face", y="accuracy", size="size MB", color="model",
                                  error_y=scored["CI high"] - scored["accuracy"],
                                  error_y_minus=scored["accuracy"] - scored["CI low"],
                                  hover_data=["params", "macro-F1"],
                                  title="Accuracy (95% interval) vs latency (size = file MB)"))
    cost.plotly_chart(px.scatter(scored, x="train min", y="accuracy", color="model", hover_data=["epochs", "params"],
                                 title="Accuracy vs training time (minutes on the card's device)"))

# ----------------------------------------------------------------------------- FER+ crowd labels
crowd = leaderboard.crowd_frame(infos, split, dataset)
if not crowd.empty:
    st.header("Against the crowd (FER+)")
    st.caption(f"Every model with a saved score against the FER+ majority on the {split} split of {data_name}, "
               "whatever its label set or training labels. The 7-class view reads an 8-class model's contempt "
               "answers as disgust and counts contempt votes as disgust, so FER+ and FER2013 models compare on the "
               "same faces; 'own emotions' scores each model on its own label set.")
    st.dataframe(crowd, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.4f")
        for c in ("FER+ accuracy (7-class view)", "FER+ accuracy (own emotions)", "FER2013 accuracy")})

# ----------------------------------------------------------------------------- other datasets
cross = leaderboard.cross_dataset_frame(selected, dataset)
if not cross.empty:
    st.header("On other datasets")
    st.caption(f"Each selected model's results on every dataset other than {data_name}, with the number of "
               "images scored (emotions outside a model's label set are skipped and counted).")
    st.dataframe(cross, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.4f") for c in ("accuracy", "macro-F1", "clean accuracy")})

# ----------------------------------------------------------------------------- real photos
st.header("Real photos: the whole pipeline")
if photo_set is None:
    st.info("No model of this label set was measured on real photos yet (the 'real photos' column stays blank). "
            "Run, on class folders of photos (DIR/<emotion>/*.jpg):")
    st.code("\n".join(f"python -m fer_core evaluate --model {i.id} --photos DIR" for i in selected), language="bash")
else:
    photo_table = leaderboard.photo_frame(selected, photo_set["id"])
    st.caption(f"{photo_set['name']} ({photo_set['source']}): every photo through detection, framing and the model, "
               f"a photo with no face found counting as wrong; the leaderboard's 'real photos' column is the default "
               f"pipeline ({photo_store.default_pipeline()}). 5-class recall: mean recall over angry, happy, neutral, "
               "sad and surprise. The pipeline none/whole classifies each photo whole, as a face crop: the classifier "
               "alone, without detection. ms/photo: detection, framing and classification on the evaluating machine.")
    st.dataframe(photo_table, hide_index=True, column_config={
        "face found": st.column_config.NumberColumn(format="percent"),
        **{c: st.column_config.NumberColumn(format="%.4f")
           for c in ("accuracy", "accuracy on found", "5-class recall", "macro-F1")},
        "ms/photo": st.column_config.NumberColumn(format="%.1f")})
    measured = list(dict.fromkeys(photo_table["model"]))
    if measured:
        left, right = st.columns(2)
        photo_model = left.selectbox("Misses of", measured, key="photo_model")
        photo_info = next(i for i in selected if i.id == photo_model)
        pipeline = right.selectbox("Pipeline", photo_store.pipelines(photo_info, photo_set["id"]),
                                   key="photo_pipeline")
        stamp = photo_store.photo_result(photo_info, photo_set["id"], pipeline).get("evaluated_at")
        misses = saved_photo_misses(photo_model, photo_set["id"], pipeline, stamp, photo_info)
        if misses is None:
            st.info(f"No per-photo predictions saved for {photo_model} ({pipeline}); run `evaluate --photos` "
                    "without --no-save to keep them.")
        elif not photo_gallery.folder_present(misses["source"]):
            st.info(f"The photo folder {misses['source']} is not on this machine, so the misses cannot be shown.")
        else:
            for section in misses["sections"]:
                st.subheader(section.title)
                grid = st.columns(6)
                for k, item in enumerate(section.items):
                    thumb = photo_thumbnail(misses["source"], item.file, item.box, item.label)
                    if thumb is not None:
                        grid[k % 6].image(thumb, caption=item.caption)

# ----------------------------------------------------------------------------- studies
fair = studies.equal_budget_frame(infos, split)
if not fair.empty:
    st.header("The seed architectures at an equal budget")
    st.caption(f"Trained from scratch with one recipe (same epochs, batch, learning-rate schedule and augmentation; "
               f"{int(fair['epochs'].max())} epochs each on the card's device) and scored on the {split} split. "
               "Transfer-learning heads start from random weights: ImageNet weights cannot be downloaded here.")
    st.dataframe(fair, hide_index=True, column_config={
        "params": st.column_config.NumberColumn(format="localized"),
        **{c: st.column_config.NumberColumn(format="%.4f") for c in ("accuracy", "macro-F1")}})
    one_answer = fair[fair["emotions predicted"] == 1]
    if len(one_answer):
        st.caption(f"{', '.join(one_answer['model'])} answers the same emotion for every face: with this recipe and "
                   "budget it learned only the class prior, so its accuracy is the largest class's share.")
    compressed = fair[fair["shipped as"] != "keras"]
    if len(compressed):
        st.caption("Shipped as an edge export only, since the Keras file exceeds the 25 MB limit on a shipped "
                   f"model: {', '.join(compressed['model'])}. *Edge exports* below compares each with its float "
                   "parent, measured before the parent was set aside.")
    missing = studies.missing_seed_architectures(fair)
    if missing:
        st.caption(f"Not in the table (no model trained with this recipe and budget is registered): "
                   f"{', '.join(missing)}.")
ablation = studies.ablation_frame(infos, split=split)
if not ablation.empty:
    st.header("Ablations: augmentation and input colour")
    st.caption(f"One architecture ({studies.ABLATION_ARCH}), one recipe and budget; only the augmentation level, "
               f"the input colour (grayscale, or grayscale repeated to RGB) or random erasing differ. {split} split.")
    ablation["setting"] = (ablation["augmentation"] + " aug · " + ablation["input"]
                           + ablation["random erasing"].map(lambda p: f" · erase {p:g}" if p else ""))
    left, right = st.columns([3, 2])
    left.plotly_chart(px.bar(ablation.dropna(subset=["accuracy"]).sort_values("accuracy"), x="accuracy",
                             y="setting", orientation="h",
                             text_auto=".3f", hover_data=["model", "macro-F1", "epochs"]), key="ablation_chart")
    right.dataframe(ablation.drop(columns="setting"), hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.4f") for c in ("accuracy", "macro-F1")})

# ----------------------------------------------------------------------------- robustness
st.header("Robustness: accuracy under corruptions")
curves = rb.robustness_frame(selected, dataset)
no_report = [i.id for i in selected if rb.report_of(i, dataset) is None]
if not curves.empty:
    fig = px.line(curves, x="severity", y="accuracy", color="model", facet_col="corruption", facet_col_wrap=3,
                  markers=True, hover_data=["level", "n"], height=760,
                  category_orders={"corruption": list(rb.CORRUPTIONS)})
    fig.for_each_annotation(lambda a: a.update(text=a.text.removeprefix("corruption=")))
    fig.update_xaxes(tickvals=list(rb.SEVERITIES))
    st.plotly_chart(fig, key="robustness")
    sizes = sorted({int(n) for n in curves["n"]})
    st.caption(f"A fixed, seeded, stratified subset of the validation split ({', '.join(map(str, sizes))} images); "
               "severity 0 is the untouched subset. " + "; ".join(
                   f"{name}: {what}" for name, (what, _, _) in rb.CORRUPTIONS.items()) + ".")
if no_report:
    st.info(f"No robustness report on {data_name} for {', '.join(no_report)}. Run:")
    st.code("\n".join(f"python -m fer_core robustness --model {m} --data {(dataset or {}).get('source') or DATA_HINT}"
                      for m in no_report), language="bash")

# ----------------------------------------------------------------------------- edge exports
edge = exports.exports_frame(candidates, split, dataset)
if not edge.empty:
    st.header("Edge exports")
    st.caption(f"LiteRT / ONNX exports (`python -m fer_core export`) beside their parent on the {split} split of "
               f"{data_name}. Agreement: share of faces with the same top label as the parent, from both models' "
               f"saved per-image predictions. Latencies: median per face and per batch of {LATENCY_BATCH}, "
               "export and parent measured in the same run by the export's evaluation, on this machine's CPU.")
    st.dataframe(edge, hide_index=True, column_config={
        **{c: st.column_config.NumberColumn(format="%.2f") for c in edge.columns if "MB" in c or "ms/" in c},
        **{c: st.column_config.NumberColumn(format="%.4f") for c in
           ("accuracy", "parent accuracy", "macro-F1", "parent macro-F1", "agreement")},
        "size vs parent": st.column_config.NumberColumn(format="percent"),
        "Δ accuracy (points)": st.column_config.NumberColumn(format="%+.2f")})
    speed = edge.melt(id_vars="export", value_vars=["ms/face", "parent ms/face"], var_name="model", value_name="ms")
    st.plotly_chart(px.bar(speed.dropna(), x="export", y="ms", color="model", barmode="group",
                           title="Latency per face: export vs its parent (same run)"), key="edge_latency")

# ----------------------------------------------------------------------------- distilled students
students = students_table.students_frame(candidates, split, dataset)
if not students.empty:
    st.header("Distilled students")
    st.caption(f"Networks trained on a teacher's probabilities (`python -m fer_core distill`) beside that teacher on "
               f"the {split} split of {data_name}, each with its default test-time augmentation. Agreement: share of "
               "faces with the same top label, from both models' saved predictions. Latency per face: from each "
               "model's own evaluation on this machine's CPU.")
    st.dataframe(students, hide_index=True, column_config={
        **{c: st.column_config.NumberColumn(format="%.4f") for c in ("accuracy", "teacher accuracy", "agreement")},
        **{c: st.column_config.NumberColumn(format="%.2f") for c in ("ms/face", "teacher ms/face")},
        "speed-up": st.column_config.NumberColumn(format="×%.1f")})

# ----------------------------------------------------------------------------- training curves
st.header("Training curves")
history = leaderboard.history_frame(selected)
if history.empty:
    st.info("The selected models' cards hold no training history.")
else:
    fig = px.line(history, x="epoch", y="value", color="model", line_dash="phase", facet_col="metric",
                  category_orders={"metric": ["accuracy", "loss"],
                                   "phase": ["train", "validation", leaderboard.SWA_PHASE]})
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.removeprefix("metric=")))
    st.plotly_chart(fig)

if not evaluated:
    st.info(f"No selected model has an evaluation on the {split} split yet, so there are no per-class, "
            "confusion, calibration or significance results to show.")
    st.stop()

# ----------------------------------------------------------------------------- per-class F1
st.header("Per-class F1")
per_class = leaderboard.per_class_frame(evaluated, split, dataset)
fig = px.bar(per_class, x="emotion", y="f1", color="model", barmode="group",
             hover_data=["precision", "recall", "support"],
             category_orders={"emotion": list(evaluated[0].labels)})
fig.update_yaxes(range=[0, 1])
st.plotly_chart(fig)

# ----------------------------------------------------------------------------- confusion matrices
st.header("Confusion matrices")
normalised = st.radio("Show", ["counts", "normalised (share of each true class)"], horizontal=True,
                      key="cm_mode") != "counts"
columns = st.columns(min(3, len(evaluated)))
for k, info in enumerate(evaluated):
    m = info.metrics(split, dataset)
    cm = metrics.normalize_rows(m["confusion_matrix"]) if normalised else m["confusion_matrix"]
    fig = px.imshow(cm, x=m["labels"], y=m["labels"], text_auto=".0%" if normalised else True,
                    color_continuous_scale="Blues",
                    labels={"x": "predicted", "y": "true", "color": "share" if normalised else "images"},
                    title=f"{info.id} — accuracy {m['accuracy']:.1%}")
    fig.update_layout(coloraxis_showscale=False)
    columns[k % len(columns)].plotly_chart(fig, key=f"confusion_{info.id}")

# ----------------------------------------------------------------------------- calibration
st.header("Calibration")
reliability = leaderboard.reliability_frame(evaluated, split, dataset)
fig = px.line(reliability, x="confidence", y="accuracy", color="model", markers=True, hover_data=["count"],
              title="Reliability diagram (15 confidence bins)")
fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                         line={"dash": "dot", "color": "gray"}))
fig.update_layout(xaxis_title="mean confidence in bin", yaxis_title="accuracy in bin",
                  xaxis_range=[0, 1.02], yaxis_range=[0, 1.02])
st.plotly_chart(fig)
st.caption("ECE (expected calibration error): " + ", ".join(
    f"{i.id} {i.metrics(split, dataset).get('ece', float('nan')):.3f}" for i in evaluated)
    + ". Points below the diagonal are over-confident.")

# ----------------------------------------------------------------------------- McNemar
st.header("Is one model really better? (McNemar's test)")
predictions = {i.id: p for i in evaluated if (p := predictions_of(i, split, dataset)) is not None}
if len(predictions) < 2:
    st.info("Needs saved per-image predictions of at least two models on this split "
            "(`python -m fer_core evaluate` writes them to models/<id>/eval/).")
else:
    pairs = comparison.pairwise_mcnemar(predictions)
    if pairs.empty:
        st.warning("The selected models were evaluated on different images, so they cannot be paired.")
    else:
        fig = px.imshow(comparison.pvalue_matrix(pairs), text_auto=".3g", color_continuous_scale="RdBu",
                        zmin=0, zmax=0.1,
                        title="p-values (small = the two models differ on the same images)")
        st.plotly_chart(fig)
        st.dataframe(pairs, hide_index=True,
                     column_config={"accuracy A": st.column_config.NumberColumn(format="%.4f"),
                                    "accuracy B": st.column_config.NumberColumn(format="%.4f"),
                                    "statistic": st.column_config.NumberColumn(format="%.3f"),
                                    "p-value": st.column_config.NumberColumn(format="%.2e")})

# ----------------------------------------------------------------------------- misclassified gallery
st.header("Misclassified faces")
if not predictions:
    st.info("Evaluate a model to browse its mistakes.")
    st.stop()
model_id = st.selectbox("Model", list(predictions))
pred = predictions[model_id]
worst = comparison.top_confusions(pred, k=1)
true_default, pred_default = worst[0][:2] if worst else pred.labels[:2]
left, right = st.columns(2)
true_label = left.selectbox("True emotion", pred.labels, index=pred.labels.index(true_default))
predicted_label = right.selectbox("Predicted as", pred.labels, index=pred.labels.index(pred_default))
if true_label == predicted_label:
    st.info("Pick two different emotions to see mistakes.")
    st.stop()
mistakes = comparison.misclassified(pred, true_label, predicted_label)
st.write(f"**{len(mistakes):,}** {true_label} faces predicted as {predicted_label} by {model_id} "
         f"({pred.split_description}).")
dataset = dataset_sidebar()
if mistakes.empty:
    st.stop()
if dataset is None:
    st.info("Load the dataset in the sidebar to see these faces.")
    st.stop()
shown = mistakes.head(40)
images = comparison.lookup_images(dataset, shown["file"])
if all(img is None for img in images):
    st.warning("The loaded dataset does not contain these files; load the dataset the model was evaluated on.")
    st.stop()
st.caption(f"The {len(shown)} most confident mistakes; caption: confidence in '{predicted_label}' "
           f"/ probability of '{true_label}'.")
grid = st.columns(8)
for k, (img, row) in enumerate(zip(images, shown.itertuples())):
    if img is not None:
        grid[k % 8].image(img, width=96, caption=f"{row.confidence:.0%} / {row.p_true:.0%}")
