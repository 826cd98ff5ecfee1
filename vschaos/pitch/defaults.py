"""The pitch tracker's settings (``extract_pitch.py``'s defaults), in a module without torch: the command's
``--help`` reads them before anything heavy loads."""

CREPE_FMAX = 2006.0  # Hz, highest bin centre
MODELS = ("tiny", "full")
DEFAULT_MODEL = "tiny"
DEFAULT_HOP_SECONDS = 0.01
DEFAULT_FMIN = 50.0
DEFAULT_FMAX = CREPE_FMAX
DEFAULT_THRESHOLD = 0.5
DEFAULT_SILENCE_DB = -60.0
DEFAULT_MEDIAN_FRAMES = 5
