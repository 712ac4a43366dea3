"""Django's own test suite run against asgiserve's handler."""
