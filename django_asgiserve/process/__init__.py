"""The processes: the supervisor, the preloader it starts, the workers forked from it, and the
messages they exchange."""
