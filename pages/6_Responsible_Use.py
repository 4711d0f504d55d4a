"""Responsible Use: what the models are for and not for, the data and protocol behind them, each model's
per-class weaknesses and robustness from its card, the scientific caveat and the privacy stance."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from fer_core.evaluation import model_card as mc
from fer_core.evaluation.defaults import defaults_rows
from pages.common import model_infos

st.set_page_config(page_title="Responsible Use", page_icon="⚖️", layout="wide")
st.title("Responsible use")

try:
    statement = mc.statement_sections()
except FileNotFoundError as err:
    st.error(str(err))
    st.stop()

infos = model_infos()
for heading in ("Intended uses", "Uses it is not fit for", "The data", "Whose labels the defaults repeat",
                "Evaluation protocol"):
    if heading in statement:
        st.header(heading)
        st.markdown(statement[heading])
    if heading == "The data" and (fact := mc.duplicates_fact(infos)):
        st.caption(fact)
    if heading == "Whose labels the defaults repeat" and (rows := defaults_rows(infos)):
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="defaults", column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in ("FER+ crowd accuracy", "FER2013-label accuracy",
                                                                "real-photo accuracy")})

st.header("Where each model is weak")
if not infos:
    st.info("No trained models yet, so there are no evaluations to report. Train one with "
            "`python -m fer_core train`, then `python -m fer_core evaluate`.")
else:
    cards = [mc.model_card(info) for info in infos]
    rows = [{"model": c["id"], "measured on": c["result"].get("split_description"), **row}
            for c in cards if c["result"] for row in c["per_class"]]
    if rows:
        st.caption("Per-class results of each model's reported evaluation (from its card), weakest F1 first. "
                   "'most often called' is the wrong label the model gives that emotion's images most often.")
        table = pd.DataFrame(rows).sort_values(["model", "f1"], kind="stable")
        st.dataframe(table, hide_index=True, key="per_class", column_config={
            **{c: st.column_config.NumberColumn(format="%.3f") for c in ("precision", "recall", "f1")},
            "share": st.column_config.NumberColumn(format="percent")})
    unevaluated = [c["id"] for c in cards if not c["result"]]
    if unevaluated:
        st.warning(f"Not evaluated yet: {', '.join(unevaluated)}.")
    for info, card in zip(infos, cards):
        with st.expander(f"{card['name']} (`{card['id']}`)"):
            if card["weaknesses"]:
                st.markdown("Weakest emotions:\n" + "\n".join(f"- {w}" for w in card["weaknesses"]))
            if card["other_datasets"]:
                st.markdown("On other datasets:")
                st.dataframe(pd.DataFrame(card["other_datasets"]), hide_index=True, key=f"other_{card['id']}")
            if card["robustness"]:
                st.markdown("Robustness (accuracy on the validation subset, clean and at the strongest corruption):")
                st.dataframe(pd.DataFrame(card["robustness"]), hide_index=True, key=f"robust_{card['id']}")
            else:
                st.caption("No robustness report yet: "
                           f"`python -m fer_core robustness --model {card['id']} --data DIR`.")
            st.download_button("Model card (Markdown)", mc.model_card_markdown(info, statement),
                               file_name=f"{card['id']}_model_card.md", mime="text/markdown", key=f"md_{card['id']}")

for heading in ("What a facial expression can and cannot tell", "Privacy"):
    if heading in statement:
        st.header(heading)
        st.markdown(statement[heading])
