"""``python -m edge_emotion`` is the ``edge-emotion`` command."""

from .cli import main

if __name__ == "__main__":
    main()
