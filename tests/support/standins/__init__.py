"""Local stand-ins for provider APIs (SendGrid, Twilio), served on 127.0.0.1.

They implement the endpoints touchflow calls, validate every request against
the provider's published OpenAPI spec and can be told to fail, so tests and
benchmarks exercise the real vendor SDKs over real HTTP without the internet.
"""
