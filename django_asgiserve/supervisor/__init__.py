"""What runs in the supervisor, the process the user started: its life cycle
(:mod:`supervisor`), the pool of workers, edits, the drain, recycling, crashes, and the process
model that starts children (:mod:`launching`, :mod:`fork_model`). What runs in a child is in
:mod:`django_asgiserve.process`."""
