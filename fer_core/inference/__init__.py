"""From a photo to emotions, and why: imports `base`, `data` and `models`.

Photo intake (`images`), face detection (`faces`: BlazeFace in `blazeface`, Haar confirmed by MTCNN's O-Net as
LiteRT in `onet`, MTCNN; the `Face` record in `face`), from a face to the model's input (`framing`: aligned,
FER2013-framed or box crops, the whole-image rule), classification (`predict`; `loader`, the process's one cache
of loaded classifiers; `warm_up` before the first face) and explanations (`gradcam`, `occlusion`).
"""
