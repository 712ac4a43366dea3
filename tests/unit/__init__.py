"""In-process unit tests: no server process, no subprocess."""
