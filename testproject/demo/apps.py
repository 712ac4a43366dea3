from django.apps import AppConfig

#: What this worker's ``worker_started`` receiver saw (ASGISERVE["LIFESPAN_SIGNALS"] is on).
LIFESPAN = {"worker_started": False, "backend": None}


def record_worker_started(sender, backend, **kwargs):
    """Runs in each worker just before it serves: the place to warm caches or open pools."""
    LIFESPAN["worker_started"] = True
    LIFESPAN["backend"] = backend


class DemoConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"

    def ready(self):
        from django_asgiserve.signals import worker_started

        worker_started.connect(record_worker_started)
