import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def exporter(prometheus):
    """A ticket exporter scraped by the session's Prometheus under its own target label."""
    import uuid

    from tools.devenv.tickets import TicketExporter

    tickets = TicketExporter().start()
    name = "tickets-" + uuid.uuid4().hex[:6]
    prometheus.add_target(name, tickets.address)
    prometheus.wait_for_target_up(name)
    tickets.target = name
    yield tickets
    prometheus.remove_target(name)
    tickets.stop()
