"""How the offline-tiny models were made and are measured; not shipped.

The synthetic scene generator (scenes.py), the word vocabulary (vocab.py),
the training scripts (train_clip.py, train_blip.py), the retrieval quality
measures (quality.py, inference.py) and the end-to-end pipeline evaluation
(pipeline_eval.py). Product packages never import this package; it imports
them (the registry, and the gateway for the pipeline evaluation).
"""
