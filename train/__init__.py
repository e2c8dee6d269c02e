"""Training side of edge-emotion (installed as ``edge_emotion.train``; needs the ``train`` extra).

The model definition (:mod:`.model`, :mod:`.resnet`, :mod:`.audio_cnn`, :mod:`.fusion`), datasets,
augmentation, the training loop and evaluation. Imports the SDK's preprocessing, never the reverse.
"""
