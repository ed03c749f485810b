"""The offline-tiny CLIP and BLIP as they ship: the committed weights
(weights/), the open_clip config template (configs/) and the registry that
makes open_clip / transformers load them with no download (registry.py).

Everything that made them (scene generator, vocabulary, training, quality
evaluation) lives in `offline_training`, which no product image carries.
"""
