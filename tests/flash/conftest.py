"""Fixtures of the flash tests: the agent tests' real mosquitto (one per session, stoppable and restartable;
under CI=true a missing mosquitto fails), and real agents (``edgepack-device agent``'s own make_agent with a
state folder, an MQTT link and the local HTTP API) started in this process."""
from __future__ import annotations

from tests.agent.conftest import broker, mosquitto_bin, session_broker, subscribe  # noqa: F401  (fixtures)
