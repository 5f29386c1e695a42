from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "bench.servers.cluster"
    label = "bench_cluster"
