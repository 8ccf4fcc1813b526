"""One router per feature; each module exports ``router``."""
