"""Video and audio sources with integer ``timestamp_ms`` on one clock: files (PyAV) and live devices."""
