"""Registers the `rehearsal` marker for the end-to-end tests (pytest runs with --strict-markers)."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "rehearsal: runs the CPU rehearsal of playbooks/h200_pd.yml on the local Docker engine (minutes)",
    )
