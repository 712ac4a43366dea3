"""What the server lets a developer see about their code: blocked loops, sync hops, costs."""
