"""Helpers shared by the black-box integration tests (tests/integration).

Everything here runs on loopback (127.0.0.0/8, ::1) or inside a network
namespace created by the test, binds port 0, and waits on conditions with
bounded timeouts instead of sleeping.
"""
