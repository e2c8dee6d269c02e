"""The front end: everything between raw media and the model's graph inputs, in numpy.

- :mod:`.features` — resampling, mono mixing, log-mel, voice activity;
- :mod:`.face` — face detection/tracking (MediaPipe's BlazeFace, run by :mod:`.blazeface`) and the face crop;
- :mod:`.tracks` — several faces at once, each with a track id that stays while it stays in view;
- :mod:`.speaker` — which followed face is the voice heard (mouth motion against the voice's level);
- :mod:`.align` — the one alignment of audio steps and face frames onto the model's ``T`` steps;
- :mod:`.preprocess` — a whole clip to the model's windows (training and evaluation use it).

The streaming recognizer, offline clip preprocessing and ``edge_emotion.train`` all import these;
nothing else computes them.
"""
