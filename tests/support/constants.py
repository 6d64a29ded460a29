"""Names and credentials shared by the integration tests."""

AUTH_USER = "alice"
AUTH_PASSWORD = "wonderland"

# Names only the test DNS server (tests/support/dns.py) knows.
NAME_V4 = "target.test"          # -> 127.0.0.1
NAME_V6 = "target6.test"         # -> ::1
NAME_DUAL = "dual.test"          # -> ::1 and 127.0.0.1 (target listens on 127.0.0.1 only)
NAME_MISSING = "no-such-host.test"  # NXDOMAIN

# The longest name DNS can carry in text form (253 bytes, labels <= 63).
LONG_NAME = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 56]) + ".test"
assert len(LONG_NAME) == 253, len(LONG_NAME)

DNS_RECORDS = {
    NAME_V4: ["127.0.0.1"],
    NAME_V6: ["::1"],
    NAME_DUAL: ["::1", "127.0.0.1"],
    LONG_NAME: ["127.0.0.1"],
}
