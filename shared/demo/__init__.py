"""The demo scenario: a deterministic month of coordination, played through the public HTTP API."""
