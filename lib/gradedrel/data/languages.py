"""The embedded data sets' languages, as constants without imports (the run-argument check
in config.py reads them before any dependency is installed)."""

XQUAD = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
XQUAD_R = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")   # XQuAD's less ro
