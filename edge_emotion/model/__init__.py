"""The model layer: the format table (:mod:`.formats`), bundles and their verification
(:mod:`.bundle`), export validation records (:mod:`.validation`) and the engine that runs a bundle's
three graphs through a runtime backend (:mod:`.engine`). It imports the front end's configuration,
never the stream, the CLI, ``train`` or ``export``."""
