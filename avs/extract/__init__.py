"""Extraction: from video files to what a collection store holds — decoded frames (PyAV), shot boundaries (V3C
master shot files, TransNetV2, PySceneDetect's content detector) and the keyframes chosen inside each shot.

Needs the ``extract`` extra (``pip install 'avs[extract]'``); every module imports it lazily, so that importing
them without it works and the first call says what to install."""
