"""Signals the core sends; feature packages react to each other's events only through these."""

from blinker import Namespace

_signals = Namespace()

patient_enrolled = _signals.signal("patient-enrolled")
patient_transferred = _signals.signal("patient-transferred")
