from django.apps import AppConfig


class RecoveryConfig(AppConfig):
    name = "bench.servers.recovery"
    label = "bench_recovery"
