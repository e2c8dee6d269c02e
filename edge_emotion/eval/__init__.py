"""Evaluation without torch: corpus adapters (:mod:`.datasets` and one module per corpus),
speaker-independent splits (:mod:`.splits`), metrics (:mod:`.metrics`) and the evaluation of a
bundle on a corpus (:mod:`.evaluate`). ``edge-emotion eval`` and ``bench --data`` use it;
``edge_emotion.train`` imports it for its data."""
