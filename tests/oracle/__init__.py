"""The official STScI pipeline (jwst 3.0.0) run offline, as a test oracle for webbcal."""
