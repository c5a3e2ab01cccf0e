"""Blink's stand-in for kafka-python's test/service.py, which its PyPI source package leaves out.

kafka-python's integration fixtures (test/integration/fixtures.py) import ExternalService and
SpawnedService from test/service.py. With KAFKA_URI set they only wrap an already running
broker in ExternalService; scripts/kafka-python-tests starts Blink and points KAFKA_URI at it,
so nothing here spawns a broker.
"""


class ExternalService:
    """A broker started elsewhere (Blink): nothing to start, stop or wait for."""

    def __init__(self, host, port):
        self.host = host
        self.port = port

    def start(self):
        pass

    def stop(self):
        pass

    def dump_logs(self):
        pass

    def wait_for(self, pattern, timeout=30):
        return True


class SpawnedService:
    """Spawning Kafka or ZooKeeper processes is what the fixtures do without KAFKA_URI."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("scripts/kafka-python-tests runs against Blink via KAFKA_URI only")
