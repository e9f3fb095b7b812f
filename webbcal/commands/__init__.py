"""One module per ``webbcal`` sub-command (loaded lazily by ``webbcal.cli``)."""
