"""The steps of the example pipeline; each is a plain function flowmake calls."""
