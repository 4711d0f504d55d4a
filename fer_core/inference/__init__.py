"""From a photo to emotions, and why: imports `base`, `data` and `models`.

Photo intake (`images`), face detection (`faces`, with MTCNN's O-Net as LiteRT in `onet`), classification
(`predict`; `loader`, the process's one cache of loaded classifiers; `warm_up` before the first face) and
explanations (`gradcam`, `occlusion`).
"""
