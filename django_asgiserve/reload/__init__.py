"""The reloader: watching files (supervisor side), Django's reloader contract (worker side) and
the sources both look at."""
