"""Datasets on disk, and what can be learnt about them before any model: imports only `base`.

Loading every supported layout (`datasets`), FER+ crowd votes (`votes`), counts and mean faces (`explore`)
and duplicates, leaks and bad files (`quality`).
"""
