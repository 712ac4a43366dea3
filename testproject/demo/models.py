from django.db import models


class Note(models.Model):
    """A tiny model so that the admin and migrations have something to show."""

    text = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created",)

    def __str__(self):
        return self.text
