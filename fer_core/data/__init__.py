"""Datasets on disk, and what can be learnt about them before any model: imports only `base`.

The in-memory dataset (`fer_dataset`), loading it with a disk cache (`datasets`) from a folder or zip
(`sources`) in the image-folder layouts (`image_folders`) or as fer2013.csv (`fer2013_csv`), FER+ crowd
votes (`votes`) and what the crowd says (`crowd`), counts and mean faces (`explore`) and duplicates, leaks
and bad files (`quality`).
"""
