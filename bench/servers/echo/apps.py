from django.apps import AppConfig


class EchoConfig(AppConfig):
    name = "bench.servers.echo"
    label = "bench_echo"
