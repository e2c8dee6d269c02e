"""Runtime backends (installed as ``edge_emotion.runtimes``): one file per runtime, imported lazily."""
