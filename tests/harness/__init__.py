"""Test harness helpers shared by unit, integration and e2e tests (real external daemons)."""
